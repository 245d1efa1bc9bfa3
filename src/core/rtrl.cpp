// _core.rtrl: the binding of the native RTRL (csrc/cells/rtrl.h). Checks every
// array at the boundary, checks the sensitivity bytes against the caller's
// budget before allocating anything, then releases the GIL around the core
// call only. rnnkit.functional calls it after rnnkit._checks.check_rtrl.
#include <string>

#include "binding.h"

namespace py = pybind11;
using namespace rnnkit_py;

namespace {

rnnkit::Cell parse_cell(const std::string& name) {
    if (name == "rnn") return Cell::rnn;
    if (name == "indrnn") return Cell::indrnn;
    if (name == "lstm") return Cell::lstm;
    if (name == "gru") return Cell::gru;
    throw py::value_error("cell must be 'rnn', 'lstm', 'gru' or 'indrnn', got '" + name + "'");
}

rnnkit::RtrlMode parse_mode(const std::string& name) {
    if (name == "exact") return rnnkit::RtrlMode::exact;
    if (name == "simplified") return rnnkit::RtrlMode::simplified;
    if (name == "diag") return rnnkit::RtrlMode::diag;
    throw py::value_error("mode must be 'exact', 'simplified' or 'diag', got '" + name + "'");
}

template <class Real>
py::tuple rtrl_typed(Cell cell, rnnkit::RtrlMode mode, py::handle x, py::handle h0, py::handle c0, py::handle w_ih,
                     py::handle w_hh, py::handle b_ih, py::handle b_hh, py::handle dy, py::handle lengths,
                     bool reverse, Act act, py::handle S0, int64_t budget) {
    const auto xs = checked_shape<Real>(x, "x", 3);
    const int64_t T = xs[0], N = xs[1], C = xs[2];
    if (T < 1 || N < 1 || C < 1) throw py::value_error("x must have T, N and C all >= 1, got " + shape_str(xs));
    const bool ind = cell == Cell::indrnn, lstm = cell == Cell::lstm;
    const int64_t G = rnnkit::gates_of(cell);
    const auto ws = checked_shape<Real>(w_hh, "w_hh", ind ? 1 : 2);
    const int64_t H = ind ? ws[0] : ws[1], GH = G * H;
    if (H < 1 || (!ind && ws[0] != GH))
        throw py::value_error("w_hh must have shape (G*H, H) or IndRNN's (H,), got " + shape_str(ws));
    const rnnkit::Dims d{T, N, C, H};
    const int64_t count = rnnkit::rtrl_sens_count(cell, mode, d);
    const int64_t sens = count * static_cast<int64_t>(sizeof(Real));
    // IndRNN's block buffers count too (docs/rtrl.md, "Budget"); 0 elsewhere.
    const int64_t work =
        static_cast<int64_t>(rnnkit::rtrl_workspace_bytes(cell, mode, d, sizeof(Real), rnnkit::num_threads()));
    const int64_t need = sens + work;
    if (budget >= 0 && need > budget)
        throw py::value_error("rtrl sensitivities need " + std::to_string(sens) + " bytes" +
                              (work > 0 ? " plus " + std::to_string(work) + " bytes of block buffers" : "") +
                              ", over the budget of " + std::to_string(budget) + " bytes (RNNKIT_RTRL_MAX_BYTES)");

    rnnkit::RtrlIO<Real> io{};
    io.x = input<Real>(x, "x", {T, N, C});
    io.h0 = input<Real>(h0, "h0", {N, H});
    io.c0 = lstm ? input<Real>(c0, "c0", {N, H}) : nullptr;
    io.w_ih = input<Real>(w_ih, "w_ih", {GH, C});
    io.w_hh = ind ? input<Real>(w_hh, "w_hh", {H}) : input<Real>(w_hh, "w_hh", {GH, H});
    io.b_ih = input<Real>(b_ih, "b_ih", {GH});
    io.b_hh = input<Real>(b_hh, "b_hh", {GH});
    io.dy = input<Real>(dy, "dy", {T, N, H});
    io.lengths = lengths_input(lengths, T, N);
    io.reverse = reverse;
    io.act = act;
    const auto s0 = checked_shape<Real>(S0, "S0", mode == rnnkit::RtrlMode::exact && !ind ? 3 : 4);
    int64_t got = 1;
    for (auto v : s0) got *= v;
    if (got != count || s0[0] != N) throw py::value_error("S0 has shape " + shape_str(s0) + ", not the layout of this call");
    io.S0 = static_cast<const Real*>(py::reinterpret_borrow<py::array>(S0).data());

    auto y = empty<Real>({T, N, H});
    auto h_n = empty<Real>({N, H});
    auto dh0 = empty<Real>({N, H});
    auto dw_ih = empty<Real>({GH, C});
    auto dw_hh = ind ? empty<Real>({H}) : empty<Real>({GH, H});
    auto db_ih = empty<Real>({GH});
    auto db_hh = empty<Real>({GH});
    py::array_t<Real> c_n, dc0;
    if (lstm) {
        c_n = empty<Real>({N, H});
        dc0 = empty<Real>({N, H});
        io.c_n = c_n.mutable_data();
        io.dc0 = dc0.mutable_data();
    }
    // S from rnnkit's kept blocks: a stream's calls reuse one block instead of
    // faulting in fresh pages every call.
    auto S = s0.size() == 3 ? empty<Real>({s0[0], s0[1], s0[2]}) : empty<Real>({s0[0], s0[1], s0[2], s0[3]});
    io.y = y.mutable_data();
    io.h_n = h_n.mutable_data();
    io.dh0 = dh0.mutable_data();
    io.dw_ih = dw_ih.mutable_data();
    io.dw_hh = dw_hh.mutable_data();
    io.db_ih = db_ih.mutable_data();
    io.db_hh = db_hh.mutable_data();
    io.S = S.mutable_data();
    {
        py::gil_scoped_release release;
        rnnkit::rtrl<Real>(cell, mode, d, io);
    }
    if (lstm)
        return py::make_tuple(y, h_n, c_n, py::make_tuple(dh0, dc0, dw_ih, dw_hh, db_ih, db_hh), S);
    return py::make_tuple(y, h_n, py::make_tuple(dh0, dw_ih, dw_hh, db_ih, db_hh), S);
}

}  // namespace

void init_rtrl(py::module_& m) {
    m.def(
        "rtrl",
        [](const std::string& cell_name, const std::string& mode_name, py::handle x, py::handle h0, py::handle c0,
           py::handle w_ih,
           py::handle w_hh, py::handle b_ih, py::handle b_hh, py::handle dy, py::handle lengths, bool reverse,
           const std::string& nonlinearity, py::handle S0, int64_t budget) {
            const Cell cell = parse_cell(cell_name);
            const rnnkit::RtrlMode mode = parse_mode(mode_name);
            if (!rnnkit::rtrl_native(cell, mode))
                throw py::value_error("no native RTRL for " + cell_name + " mode '" + mode_name + "'");
            const Act act = parse_act(nonlinearity);
            if (!py::isinstance<py::array>(x)) throw py::type_error("x must be a numpy.ndarray");
            if (py::isinstance<py::array_t<double>>(x))
                return rtrl_typed<double>(cell, mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, dy, lengths, reverse, act, S0, budget);
            if (py::isinstance<py::array_t<float>>(x))
                return rtrl_typed<float>(cell, mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, dy, lengths, reverse, act, S0, budget);
            throw py::type_error("x must have dtype float32 or float64");
        },
        py::arg("cell"), py::arg("mode"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("b_ih"), py::arg("b_hh"), py::arg("dy"), py::arg("lengths"), py::arg("reverse"),
        py::arg("nonlinearity"), py::arg("S0"), py::arg("budget"),
        "y, h_n, [c_n,] (dh0, [dc0,] dw_ih, dw_hh, db_ih, db_hh), S.");
    m.def("rtrl_native", [](const std::string& cell, const std::string& mode) {
        return rnnkit::rtrl_native(parse_cell(cell), parse_mode(mode));
    });
}
