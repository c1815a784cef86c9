//! The PyTorch layers the whole network is built from, written so that parameter names, creation
//! order and initialisation equal PyTorch's: `Conv2d` and `Linear` (weight created before bias,
//! PyTorch's default kaiming-uniform(a=√5) init), `LayerNorm`, and `BatchNorm2d` (weight 1, bias 0,
//! with the `num_batches_tracked` buffer a PyTorch state dict carries).
//!
//! Creation order matters: `VarStore::trainable_variables` keeps it, and it then equals RVT's
//! `model.parameters()` order, which maps an optimizer state saved by PyTorch (indexed by position)
//! to parameter names.

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// PyTorch's default init for Conv2d/Linear weights and biases: U(−1/√fan_in, 1/√fan_in)
/// (kaiming_uniform with a=√5 reduces to exactly this bound).
fn torch_default_init(fan_in: i64) -> Init {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// `nn.Conv2d` (square kernel, zero padding).
#[derive(Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    stride: i64,
    padding: i64,
    groups: i64,
}

/// Geometry of a convolution: kernel, stride, padding, groups, bias.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub kernel: i64,
    pub stride: i64,
    pub padding: i64,
    pub groups: i64,
    pub bias: bool,
}

impl ConvSpec {
    /// A `kernel`×`kernel` convolution with stride 1, "same" padding, one group, with bias.
    pub fn k(kernel: i64) -> Self {
        Self {
            kernel,
            stride: 1,
            padding: (kernel - 1) / 2,
            groups: 1,
            bias: true,
        }
    }
    pub fn stride(mut self, s: i64) -> Self {
        self.stride = s;
        self
    }
    pub fn padding(mut self, p: i64) -> Self {
        self.padding = p;
        self
    }
    pub fn groups(mut self, g: i64) -> Self {
        self.groups = g;
        self
    }
    pub fn bias(mut self, b: bool) -> Self {
        self.bias = b;
        self
    }
}

impl Conv2d {
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, spec: ConvSpec) -> Self {
        let fan_in = c_in / spec.groups * spec.kernel * spec.kernel;
        let init = torch_default_init(fan_in);
        let weight = p.var(
            "weight",
            &[c_out, c_in / spec.groups, spec.kernel, spec.kernel],
            init,
        );
        let bias = spec.bias.then(|| p.var("bias", &[c_out], init));
        Self {
            weight,
            bias,
            stride: spec.stride,
            padding: spec.padding,
            groups: spec.groups,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            self.bias.as_ref(),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            self.groups,
        )
    }
}

/// `nn.Linear`.
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, bias: bool) -> Self {
        let init = torch_default_init(c_in);
        let weight = p.var("weight", &[c_out, c_in], init);
        let bias = bias.then(|| p.var("bias", &[c_out], init));
        Self { weight, bias }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
    }
}

/// `nn.LayerNorm` over the last axis (channels-last tensors).
#[derive(Debug)]
pub struct LayerNorm {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    dim: i64,
    eps: f64,
}

impl LayerNorm {
    pub fn new(p: nn::Path, dim: i64, eps: f64, affine: bool) -> Self {
        let weight = affine.then(|| p.var("weight", &[dim], Init::Const(1.0)));
        let bias = affine.then(|| p.var("bias", &[dim], Init::Const(0.0)));
        Self {
            weight,
            bias,
            dim,
            eps,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            [self.dim],
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
            true,
        )
    }
}

/// `nn.BatchNorm2d` with PyTorch's defaults (eps 1e-5, momentum 0.1, weight 1, bias 0 — tch's own
/// `batch_norm2d` draws the weight from U(0,1), see DESIGN "Library notes").
#[derive(Debug)]
pub struct BatchNorm2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: Tensor,
}

impl BatchNorm2d {
    const EPS: f64 = 1e-5;
    const MOMENTUM: f64 = 0.1;

    pub fn new(p: nn::Path, c: i64) -> Self {
        let weight = p.var("weight", &[c], Init::Const(1.0));
        let bias = p.var("bias", &[c], Init::Const(0.0));
        let running_mean = p.zeros_no_train("running_mean", &[c]);
        let running_var = p.ones_no_train("running_var", &[c]);
        // Kept so a written state dict loads back into PyTorch strictly; the value only counts.
        let num_batches_tracked = p.add(
            "num_batches_tracked",
            Tensor::zeros([], (Kind::Int64, p.device())),
            false,
        );
        Self {
            weight,
            bias,
            running_mean,
            running_var,
            num_batches_tracked,
        }
    }

    /// Train mode normalises with batch statistics and updates the running ones in place
    /// (momentum 0.1), as PyTorch does.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        if train {
            tch::no_grad(|| {
                let _ = self.num_batches_tracked.shallow_clone().g_add_scalar_(1);
            });
        }
        x.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            Self::MOMENTUM,
            Self::EPS,
            true,
        )
    }
}
