// _core.gru_forward / gru_backward: the GRU cell's binding (see binding.h).
// rnnkit.functional calls these after rnnkit._checks; users never do.
#include "binding.h"

namespace py = pybind11;
using namespace rnnkit_py;

void init_gru(py::module_& m) {
    m.def(
        "gru_forward",
        [](py::handle x, py::handle h0, py::handle w_ih, py::handle w_hh, py::handle b_ih, py::handle b_hh,
           py::handle lengths, bool reverse, bool training, int weights) {
            return forward(Cell::gru,
                           {x, h0, py::none(), w_ih, w_hh, b_ih, b_hh, lengths, reverse, Act::tanh, training, weights});
        },
        py::arg("x"), py::arg("h0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"),
        py::arg("lengths"), py::arg("reverse"), py::arg("training"), py::arg("weights") = 0,
        "y, h_n, cache dict (h, gates, hn) or None.");
    m.def(
        "gru_backward",
        [](py::handle dy, py::handle dh_n, py::handle x, py::handle h0, py::handle w_ih, py::handle w_hh,
           py::handle lengths, bool reverse, py::handle h, py::handle gates, py::handle hn, py::handle out) {
            return backward(Cell::gru, {dy, dh_n, py::none(), x, h0, py::none(), w_ih, w_hh, lengths, reverse,
                                        Act::tanh, h, py::none(), py::none(), gates, hn, out});
        },
        py::arg("dy"), py::arg("dh_n"), py::arg("x"), py::arg("h0"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("lengths"), py::arg("reverse"), py::arg("h"), py::arg("gates"), py::arg("hn"),
        py::arg("out") = py::none(), "dx, dh0, dw_ih, dw_hh, db_ih, db_hh.");
}
