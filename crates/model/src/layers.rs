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
    /// (momentum 0.1), as PyTorch does; with a `sync::install`ed all-reduce the statistics are those
    /// of the global batch over all processes (SyncBatchNorm).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        if train {
            tch::no_grad(|| {
                let _ = self.num_batches_tracked.shallow_clone().g_add_scalar_(1);
            });
            if let Some(y) = sync::current().and_then(|s| self.forward_synced(x, s.as_ref())) {
                return y;
            }
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

    /// SyncBatchNorm's training forward: per-channel sum, sum of squares and count of this process
    /// (in float64, so E[x²] − E[x]² loses nothing to cancellation), summed over all processes by a
    /// differentiable all-reduce — the gradient of every process's input then includes what the
    /// others' losses owe it through the shared statistics. Running statistics take the unbiased
    /// global variance, as `nn.SyncBatchNorm`. `None` when the all-reduce failed (already recorded
    /// by the installer; the caller falls back to this process's statistics).
    fn forward_synced(&self, x: &Tensor, sync: &dyn sync::StatsAllReduce) -> Option<Tensor> {
        let c = x.size()[1];
        let xd = x.to_kind(Kind::Double);
        let count = (x.numel() as i64 / c.max(1)) as f64;
        let local = Tensor::cat(
            &[
                xd.sum_dim_intlist([0i64, 2, 3].as_slice(), false, Kind::Double),
                (&xd * &xd).sum_dim_intlist([0i64, 2, 3].as_slice(), false, Kind::Double),
                Tensor::full([1], count, (Kind::Double, x.device())),
            ],
            0,
        );
        let global = sync.sum(&local)?;
        let n = global.narrow(0, 2 * c, 1);
        let mean = global.narrow(0, 0, c) / &n;
        let var = global.narrow(0, c, c) / &n - &mean * &mean;
        let invstd = (&var + Self::EPS).rsqrt();
        let kind = x.kind();
        let scale = (invstd * self.weight.to_kind(Kind::Double)).to_kind(kind);
        let shift = self.bias.to_kind(kind) - (&mean.to_kind(kind) * &scale);
        tch::no_grad(|| {
            let total = n.double_value(&[0]);
            let unbiased = &var * (total / (total - 1.0).max(1.0));
            let m = Self::MOMENTUM;
            let mut rm = self.running_mean.shallow_clone();
            let mut rv = self.running_var.shallow_clone();
            let new_mean = &rm * (1.0 - m) + mean.to_kind(rm.kind()) * m;
            let new_var = &rv * (1.0 - m) + unbiased.to_kind(rv.kind()) * m;
            rm.copy_(&new_mean);
            rv.copy_(&new_var);
        });
        Some(x * scale.view([1, c, 1, 1]) + shift.view([1, c, 1, 1]))
    }
}

/// The process-wide hook that turns every `BatchNorm2d` into a SyncBatchNorm: installed by
/// distributed training for its whole run (one process group per process, as torch.distributed's
/// default group), absent otherwise.
pub mod sync {
    use std::sync::{Arc, RwLock};
    use tch::Tensor;

    /// A sum over all processes whose backward pass sums the gradient over all processes.
    pub trait StatsAllReduce: Send + Sync {
        /// `None` when the collective failed; the implementation keeps the error for its owner.
        fn sum(&self, t: &Tensor) -> Option<Tensor>;
    }

    static HOOK: RwLock<Option<Arc<dyn StatsAllReduce>>> = RwLock::new(None);

    /// Installs (or with `None` removes) the all-reduce of batch statistics.
    pub fn install(hook: Option<Arc<dyn StatsAllReduce>>) {
        *HOOK.write().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    pub fn current() -> Option<Arc<dyn StatsAllReduce>> {
        HOOK.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
