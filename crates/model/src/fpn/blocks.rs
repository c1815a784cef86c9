//! YOLOX's network blocks `BaseConv`, `DWConv`, `Bottleneck`, `CSPLayer` and activations (RVT
//! `models/detection/yolox/models/network_blocks.py`, REFERENCE §2.2), on the layers of
//! [`crate::layers`], in PyTorch's creation order.

use crate::layers::{BatchNorm2d, Conv2d, ConvSpec};
use tch::nn;
use tch::Tensor;

/// YOLOX activations (`get_activation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Silu,
    Relu,
    LeakyRelu,
}

impl Act {
    /// Names as in YOLOX; anything else falls back to SiLU after config validation rejected it.
    pub fn from_name(name: &str) -> Self {
        match name {
            "relu" => Act::Relu,
            "lrelu" => Act::LeakyRelu,
            _ => Act::Silu,
        }
    }

    pub fn forward(self, x: &Tensor) -> Tensor {
        match self {
            Act::Silu => x.silu(),
            Act::Relu => x.relu(),
            // YOLOX's `lrelu` is LeakyReLU(0.1); for a slope below 1 that is max(x, 0.1·x).
            Act::LeakyRelu => x.maximum(&(x * 0.1)),
        }
    }
}

/// YOLOX `BaseConv`: Conv2d (no bias, "same" padding) → BatchNorm2d → activation.
#[derive(Debug)]
pub struct BaseConv {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
    act: Act,
}

impl BaseConv {
    pub fn new(
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        ksize: i64,
        stride: i64,
        groups: i64,
        act: Act,
    ) -> Self {
        let spec = ConvSpec::k(ksize).stride(stride).groups(groups).bias(false);
        let conv = Conv2d::new(&p / "conv", c_in, c_out, spec);
        let bn = BatchNorm2d::new(&p / "bn", c_out);
        Self { conv, bn, act }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.act
            .forward(&self.bn.forward_t(&self.conv.forward(x), train))
    }
}

/// YOLOX `DWConv`: depthwise BaseConv then pointwise BaseConv.
#[derive(Debug)]
pub struct DwConv {
    pub dconv: BaseConv,
    pub pconv: BaseConv,
}

impl DwConv {
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, ksize: i64, stride: i64, act: Act) -> Self {
        let dconv = BaseConv::new(&p / "dconv", c_in, c_in, ksize, stride, c_in, act);
        let pconv = BaseConv::new(&p / "pconv", c_in, c_out, 1, 1, 1, act);
        Self { dconv, pconv }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.pconv.forward_t(&self.dconv.forward_t(x, train), train)
    }
}

/// `Conv = DWConv if depthwise else BaseConv`, as YOLOX picks it.
#[derive(Debug)]
pub enum ConvBlock {
    Base(BaseConv),
    Depthwise(DwConv),
}

impl ConvBlock {
    pub fn new(
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        ksize: i64,
        stride: i64,
        depthwise: bool,
        act: Act,
    ) -> Self {
        if depthwise {
            ConvBlock::Depthwise(DwConv::new(p, c_in, c_out, ksize, stride, act))
        } else {
            ConvBlock::Base(BaseConv::new(p, c_in, c_out, ksize, stride, 1, act))
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            ConvBlock::Base(c) => c.forward_t(x, train),
            ConvBlock::Depthwise(c) => c.forward_t(x, train),
        }
    }
}

/// YOLOX `Bottleneck` (expansion 1.0 inside a CSP layer): 1×1 BaseConv → 3×3 Conv, residual
/// only with `shortcut` and equal widths.
#[derive(Debug)]
pub struct Bottleneck {
    pub conv1: BaseConv,
    pub conv2: ConvBlock,
    use_add: bool,
}

impl Bottleneck {
    pub fn new(
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        shortcut: bool,
        expansion: f64,
        depthwise: bool,
        act: Act,
    ) -> Self {
        let hidden = (c_out as f64 * expansion) as i64;
        let conv1 = BaseConv::new(&p / "conv1", c_in, hidden, 1, 1, 1, act);
        let conv2 = ConvBlock::new(&p / "conv2", hidden, c_out, 3, 1, depthwise, act);
        Self {
            conv1,
            conv2,
            use_add: shortcut && c_in == c_out,
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.conv2.forward_t(&self.conv1.forward_t(x, train), train);
        if self.use_add {
            y + x
        } else {
            y
        }
    }
}

/// YOLOX `CSPLayer` (C3): two 1×1 branches, `n` bottlenecks on the first,
/// `conv3(cat[m(conv1(x)), conv2(x)])` — processed branch first (REFERENCE §2.2).
#[derive(Debug)]
pub struct CspLayer {
    pub conv1: BaseConv,
    pub conv2: BaseConv,
    pub conv3: BaseConv,
    pub m: Vec<Bottleneck>,
}

impl CspLayer {
    pub fn new(
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        n: usize,
        shortcut: bool,
        depthwise: bool,
        act: Act,
    ) -> Self {
        let hidden = (c_out as f64 * 0.5) as i64;
        let conv1 = BaseConv::new(&p / "conv1", c_in, hidden, 1, 1, 1, act);
        let conv2 = BaseConv::new(&p / "conv2", c_in, hidden, 1, 1, 1, act);
        let conv3 = BaseConv::new(&p / "conv3", 2 * hidden, c_out, 1, 1, 1, act);
        let pm = &p / "m";
        let m = (0..n)
            .map(|i| Bottleneck::new(&pm / i, hidden, hidden, shortcut, 1.0, depthwise, act))
            .collect();
        Self {
            conv1,
            conv2,
            conv3,
            m,
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x1 = self.conv1.forward_t(x, train);
        let x2 = self.conv2.forward_t(x, train);
        for b in &self.m {
            x1 = b.forward_t(&x1, train);
        }
        self.conv3.forward_t(&Tensor::cat(&[x1, x2], 1), train)
    }
}
