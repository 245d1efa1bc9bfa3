// _core.lstm_forward / lstm_backward: the LSTM cell's binding (see binding.h).
// rnnkit.functional calls these after rnnkit._checks; users never do.
#include "binding.h"

namespace py = pybind11;
using namespace rnnkit_py;

void init_lstm(py::module_& m) {
    m.def(
        "lstm_forward",
        [](py::handle x, py::handle h0, py::handle c0, py::handle w_ih, py::handle w_hh, py::handle b_ih,
           py::handle b_hh, py::handle lengths, bool reverse, bool training, int weights) {
            return forward(Cell::lstm, {x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, Act::tanh, training, weights});
        },
        py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"),
        py::arg("b_hh"), py::arg("lengths"), py::arg("reverse"), py::arg("training"), py::arg("weights") = 0,
        "y, h_n, c_n, cache dict (h, c, tanh_c, gates) or None.");
    m.def(
        "lstm_backward",
        [](py::handle dy, py::handle dh_n, py::handle dc_n, py::handle x, py::handle h0, py::handle c0,
           py::handle w_ih, py::handle w_hh, py::handle lengths, bool reverse, py::handle h, py::handle c,
           py::handle tanh_c, py::handle gates, py::handle out) {
            return backward(Cell::lstm, {dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, lengths, reverse, Act::tanh, h, c,
                                         tanh_c, gates, py::none(), out});
        },
        py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"), py::arg("x"), py::arg("h0"), py::arg("c0"),
        py::arg("w_ih"), py::arg("w_hh"), py::arg("lengths"), py::arg("reverse"), py::arg("h"), py::arg("c"),
        py::arg("tanh_c"), py::arg("gates"), py::arg("out") = py::none(), "dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh.");
}
