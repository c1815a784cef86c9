//! RVT's recurrent cell `DWSConvLSTM2d` (`models/layers/rnn.py`, REFERENCE §1.6): one 1×1 conv
//! over concat[x, h_prev] gives 4C channels — sigmoid forget, input and output gates, then the
//! tanh cell input. With RVT's default `dws_conv: False` there is no spatial kernel.

use tch::{nn, Tensor};

use crate::config::LstmConfig;
use crate::layers::{Conv2d, ConvSpec};

/// The recurrent state of one stage: hidden `h` (the stage output) and cell `c`, both
/// [N, C, H, W].
#[derive(Debug)]
pub struct LstmState {
    pub h: Tensor,
    pub c: Tensor,
}

impl LstmState {
    /// Cut the graph (truncated BPTT: RVT stores states detached after each chunk, §1.7).
    pub fn detach(&self) -> LstmState {
        LstmState {
            h: self.h.detach(),
            c: self.c.detach(),
        }
    }

    pub fn shallow_clone(&self) -> LstmState {
        LstmState {
            h: self.h.shallow_clone(),
            c: self.c.shallow_clone(),
        }
    }

    /// Zeroes the rows whose `reset` flag is set (a new sequence starts there, REFERENCE §1.7);
    /// `reset` is a bool tensor [N].
    pub fn reset_rows(&self, reset: &Tensor) -> LstmState {
        let keep = reset
            .logical_not()
            .to_kind(self.h.kind())
            .to_device(self.h.device())
            .view([-1, 1, 1, 1]);
        LstmState {
            h: &self.h * &keep,
            c: &self.c * &keep,
        }
    }
}

/// `DWSConvLSTM2d`.
#[derive(Debug)]
pub struct ConvLstm {
    /// Depthwise conv on h_prev (or on [x, h]) — only with `dws_conv: true`.
    pub conv3x3_dws: Option<Conv2d>,
    pub conv1x1: Conv2d,
    dim: i64,
    only_hidden: bool,
    drop_cell: f64,
}

impl ConvLstm {
    pub fn new(p: nn::Path, dim: i64, cfg: &LstmConfig) -> Self {
        let dws_dim = if cfg.dws_conv_only_hidden {
            dim
        } else {
            2 * dim
        };
        let k = cfg.dws_conv_kernel_size as i64;
        let conv3x3_dws = cfg.dws_conv.then(|| {
            let spec = ConvSpec::k(k).padding(k / 2).groups(dws_dim);
            Conv2d::new(&p / "conv3x3_dws", dws_dim, dws_dim, spec)
        });
        let conv1x1 = Conv2d::new(&p / "conv1x1", 2 * dim, 4 * dim, ConvSpec::k(1));
        Self {
            conv3x3_dws,
            conv1x1,
            dim,
            only_hidden: cfg.dws_conv_only_hidden,
            drop_cell: cfg.drop_cell_update,
        }
    }

    /// One step: x [N, C, H, W] and the previous state (zeros when `None`) → the new state.
    pub fn forward_t(&self, x: &Tensor, prev: Option<&LstmState>, train: bool) -> LstmState {
        // zeros_like keeps x's memory format (channels-last here), as in RVT.
        let (h_prev, c_prev) = match prev {
            Some(s) => (s.h.shallow_clone(), s.c.shallow_clone()),
            None => (x.zeros_like(), x.zeros_like()),
        };
        let dws = |t: &Tensor| match &self.conv3x3_dws {
            Some(conv) => conv.forward(t),
            None => t.shallow_clone(),
        };
        let h_prev = if self.only_hidden {
            dws(&h_prev)
        } else {
            h_prev
        };
        let xh = Tensor::cat(&[x.shallow_clone(), h_prev], 1); // order: x first, then h
        let xh = if self.only_hidden { xh } else { dws(&xh) };
        let mix = self.conv1x1.forward(&xh); // [N, 4C, H, W]
                                             // REFERENCE §1.6 / §12.3: gates f, i, o (sigmoid) then the cell input (tanh).
        let gates = mix.narrow(1, 0, 3 * self.dim).sigmoid();
        let cell_input = mix.narrow(1, 3 * self.dim, self.dim).tanh();
        let cell_input = if self.drop_cell > 0.0 {
            cell_input.dropout(self.drop_cell, train)
        } else {
            cell_input
        };
        let fio = gates.chunk(3, 1);
        let c = &fio[0] * &c_prev + &fio[1] * &cell_input;
        let h = &fio[2] * c.tanh();
        LstmState { h, c }
    }
}
