//! The neck: YOLOX PAFPN over 2 to 4 consecutive backbone stages — RVT's 3-scale `in_stages
//! [2, 3, 4]` (strides 8/16/32, REFERENCE §2.3) and the fork's 4-scale `[1, 2, 3, 4]` (strides
//! 4/8/16/32, REFERENCE §2.4 and the model_4scale_sizeaware fixture README). One code path builds
//! both: a top-down pass (lateral/reduce 1×1 conv, nearest-exact ×2 upsample, concat with the
//! skip, CSP) followed by a bottom-up pass (3×3 stride-2 conv, concat with the top-down 1×1
//! output, CSP). Module names follow YOLOX (`lateral_conv0`, `reduce_conv{i}`, `C3_p{4-i}`,
//! `bu_conv{k}`, `C3_n{k}`), so RVT's state dict loads as is.

pub mod blocks;

use tch::{nn, Tensor};

use crate::config::{ConfigError, FpnConfig};
use blocks::{Act, BaseConv, ConvBlock, CspLayer};

/// YOLOX PAFPN for `L = in_channels.len()` levels (finest first).
#[derive(Debug)]
pub struct Pafpn {
    /// Top-down 1×1 convs: `lateral_conv0`, `reduce_conv1`, `reduce_conv2`.
    td_convs: Vec<BaseConv>,
    /// Top-down CSPs: `C3_p4`, `C3_p3`, `C3_p2`.
    td_csps: Vec<CspLayer>,
    /// Bottom-up stride-2 convs, finest first: (4 levels) `bu_conv3`, `bu_conv2`, `bu_conv1`.
    bu_convs: Vec<ConvBlock>,
    /// Bottom-up CSPs, finest first: (4 levels) `C3_n2`, `C3_n3`, `C3_n4`.
    bu_csps: Vec<CspLayer>,
    in_stages: Vec<usize>,
}

impl Pafpn {
    /// `in_channels`: channels of the selected stages, finest first (RVT `get_stage_dims`).
    pub fn new(p: nn::Path, cfg: &FpnConfig, in_channels: &[usize]) -> Result<Self, ConfigError> {
        let l = in_channels.len();
        if l != cfg.in_stages.len() || !(2..=4).contains(&l) {
            return Err(ConfigError::Invalid {
                key: "fpn.in_stages",
                msg: format!("{l} levels; the PAFPN takes 2 to 4"),
            });
        }
        let c: Vec<i64> = in_channels.iter().map(|&x| x as i64).collect();
        let n = (3.0 * cfg.depth).round() as usize; // REFERENCE §2.1: round(3·depth) bottlenecks
        let act = Act::from_name(&cfg.act);
        let dw = cfg.depthwise;

        // Created in RVT's registration order (lateral_conv0, C3_p4, reduce_conv1, C3_p3, then
        // the bottom-up pairs from the finest level), which is also `parameters()` order.
        let mut td_convs = Vec::new();
        let mut td_csps = Vec::new();
        for i in 0..l - 1 {
            let name = if i == 0 {
                "lateral_conv0".to_string()
            } else {
                format!("reduce_conv{i}")
            };
            let (hi, lo) = (c[l - 1 - i], c[l - 2 - i]);
            td_convs.push(BaseConv::new(&p / name.as_str(), hi, lo, 1, 1, 1, act));
            let csp = format!("C3_p{}", 4 - i);
            // All PAFPN CSP layers are built with shortcut=False (REFERENCE §2.2).
            td_csps.push(CspLayer::new(
                &p / csp.as_str(),
                2 * lo,
                lo,
                n,
                false,
                dw,
                act,
            ));
        }
        let mut bu_convs = Vec::new();
        let mut bu_csps = Vec::new();
        for j in 0..l - 1 {
            let conv = format!("bu_conv{}", l - 1 - j);
            bu_convs.push(ConvBlock::new(
                &p / conv.as_str(),
                c[j],
                c[j],
                3,
                2,
                dw,
                act,
            ));
            let csp = format!("C3_n{}", 6 - l + j);
            bu_csps.push(CspLayer::new(
                &p / csp.as_str(),
                2 * c[j],
                c[j + 1],
                n,
                false,
                dw,
                act,
            ));
        }
        Ok(Self {
            td_convs,
            td_csps,
            bu_convs,
            bu_csps,
            in_stages: cfg.in_stages.clone(),
        })
    }

    /// `stage_features`: the backbone outputs of all four stages (index 0 = stage 1).
    /// Returns one map per level, finest first, channels = the selected stage dims.
    pub fn forward_t(&self, stage_features: &[Tensor], train: bool) -> Vec<Tensor> {
        let x: Vec<&Tensor> = self
            .in_stages
            .iter()
            .map(|&s| &stage_features[s - 1])
            .collect();
        let l = x.len();
        // Top-down: fpn_out_i = conv_i(cur); cur = CSP(cat[up(fpn_out_i), skip]).
        let mut fpn_outs = Vec::with_capacity(l - 1);
        let mut cur = x[l - 1].shallow_clone();
        for i in 0..l - 1 {
            let f = self.td_convs[i].forward_t(&cur, train);
            let cat = Tensor::cat(&[upsample2(&f), x[l - 2 - i].shallow_clone()], 1);
            cur = self.td_csps[i].forward_t(&cat, train);
            fpn_outs.push(f);
        }
        // Bottom-up: out_{j+1} = CSP(cat[bu_conv(out_j), fpn_out at that level]).
        let mut outs = vec![cur];
        for j in 0..l - 1 {
            let d = self.bu_convs[j].forward_t(&outs[j], train);
            let cat = Tensor::cat(&[d, fpn_outs[l - 2 - j].shallow_clone()], 1);
            outs.push(self.bu_csps[j].forward_t(&cat, train));
        }
        outs
    }
}

/// `F.interpolate(x, scale_factor=2, mode='nearest-exact')`, as RVT's PAFPN upsamples.
fn upsample2(x: &Tensor) -> Tensor {
    let s = x.size();
    x.internal_upsample_nearest_exact2d([s[2] * 2, s[3] * 2], 2.0, 2.0)
}
