// _core.indrnn_forward / indrnn_backward: the IndRNN cell's binding (see binding.h).
// rnnkit.functional calls these after rnnkit._checks; users never do.
#include "binding.h"

namespace py = pybind11;
using namespace rnnkit_py;

void init_indrnn(py::module_& m) {
    m.def(
        "indrnn_forward",
        [](py::handle x, py::handle h0, py::handle w_ih, py::handle w_hh, py::handle b_ih, py::handle b_hh,
           py::handle lengths, bool reverse, const std::string& nonlinearity, bool training, int weights) {
            return forward(Cell::indrnn, {x, h0, py::none(), w_ih, w_hh, b_ih, b_hh, lengths, reverse,
                                        parse_act(nonlinearity), training, weights});
        },
        py::arg("x"), py::arg("h0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"),
        py::arg("lengths"), py::arg("reverse"), py::arg("nonlinearity"), py::arg("training"), py::arg("weights") = 0,
        "y, h_n, cache dict (h) or None.");
    m.def(
        "indrnn_backward",
        [](py::handle dy, py::handle dh_n, py::handle x, py::handle h0, py::handle w_ih, py::handle w_hh,
           py::handle lengths, bool reverse, const std::string& nonlinearity, py::handle h, py::handle out) {
            return backward(Cell::indrnn, {dy, dh_n, py::none(), x, h0, py::none(), w_ih, w_hh, lengths, reverse,
                                         parse_act(nonlinearity), h, py::none(), py::none(), py::none(),
                                         py::none(), out});
        },
        py::arg("dy"), py::arg("dh_n"), py::arg("x"), py::arg("h0"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("lengths"), py::arg("reverse"), py::arg("nonlinearity"), py::arg("h"),
        py::arg("out") = py::none(), "dx, dh0, dw_ih, dw_hh, db_ih, db_hh.");
}
