//! The YOLOX detection head for any number of FPN levels (RVT
//! `models/detection/yolox/models/yolo_head.py`, REFERENCE §3.1–3.2): per level a 1×1 stem,
//! two 3×3 conv branches (classification; regression + objectness), and 1×1 predictors. Outputs:
//! the raw per-level maps `[B, 4+1+C, h, w]`, the eval-mode decoding (boxes in input pixels,
//! sigmoid scores) and the train-mode tensor the losses consume (decoded boxes, raw logits,
//! anchor grid).

use tch::{nn, Device, Kind, Tensor};

use crate::assign::AnchorGrid;
use crate::config::HeadConfig;
use crate::fpn::blocks::{Act, BaseConv, ConvBlock};
use crate::layers::{Conv2d, ConvSpec};

/// What the losses consume (RVT `get_losses` inputs), anchors ordered level by level, row-major
/// inside a level (index `i·w + j`).
#[derive(Debug)]
pub struct HeadTrainOutput {
    /// [B, A, 5+C]: decoded `cx, cy, w, h` in input pixels (REFERENCE §3.2), then the raw
    /// objectness logit and the raw class logits.
    pub outputs: Tensor,
    /// [B, A, 4]: the raw regression outputs (tx, ty, tw, th), for the optional L1 loss.
    pub raw_reg: Tensor,
    /// Per anchor: grid column, row and stride (RVT `x_shifts`, `y_shifts`, `expanded_strides`).
    pub grid: AnchorGrid,
}

/// `YOLOXHead`.
#[derive(Debug)]
pub struct YoloxHead {
    pub cls_convs: Vec<[ConvBlock; 2]>,
    pub reg_convs: Vec<[ConvBlock; 2]>,
    pub cls_preds: Vec<Conv2d>,
    pub reg_preds: Vec<Conv2d>,
    pub obj_preds: Vec<Conv2d>,
    pub stems: Vec<BaseConv>,
    strides: Vec<i64>,
    num_classes: i64,
}

impl YoloxHead {
    /// `in_channels` and `strides` of the FPN levels, finest first.
    pub fn new(p: nn::Path, cfg: &HeadConfig, in_channels: &[usize], strides: &[usize]) -> Self {
        let act = Act::from_name(&cfg.act);
        let dw = cfg.depthwise;
        let nc = cfg.num_classes as i64;
        // REFERENCE §3.1: width = in_channels[-1] / 1024, hidden = int(256 · width).
        let last = in_channels.last().copied().unwrap_or(0) as f64;
        let hidden = (256.0 * (last / 1024.0)) as i64;
        let levels = in_channels.len();
        // Module lists in RVT's registration order (cls_convs, reg_convs, cls_preds, reg_preds,
        // obj_preds, stems), so creation order equals PyTorch's `parameters()` order.
        let branch = |name: &str| -> Vec<[ConvBlock; 2]> {
            let pl = &p / name;
            (0..levels)
                .map(|k| {
                    let pk = &pl / k;
                    [
                        ConvBlock::new(&pk / 0, hidden, hidden, 3, 1, dw, act),
                        ConvBlock::new(&pk / 1, hidden, hidden, 3, 1, dw, act),
                    ]
                })
                .collect()
        };
        let cls_convs = branch("cls_convs");
        let reg_convs = branch("reg_convs");
        let preds = |name: &str, c_out: i64| -> Vec<Conv2d> {
            let pl = &p / name;
            (0..levels)
                .map(|k| Conv2d::new(&pl / k, hidden, c_out, ConvSpec::k(1)))
                .collect()
        };
        let cls_preds = preds("cls_preds", nc);
        let reg_preds = preds("reg_preds", 4);
        let obj_preds = preds("obj_preds", 1);
        let ps = &p / "stems";
        let stems = in_channels
            .iter()
            .enumerate()
            .map(|(k, &c)| BaseConv::new(&ps / k, c as i64, hidden, 1, 1, 1, act))
            .collect();
        // Focal-loss prior: cls and obj biases start at -log((1 - 0.01) / 0.01) (REFERENCE §3.1).
        let prior = -((1.0f64 - 0.01) / 0.01).ln();
        tch::no_grad(|| {
            for conv in cls_preds.iter().chain(&obj_preds) {
                if let Some(b) = &conv.bias {
                    let _ = b.shallow_clone().fill_(prior);
                }
            }
        });
        Self {
            cls_convs,
            reg_convs,
            cls_preds,
            reg_preds,
            obj_preds,
            stems,
            strides: strides.iter().map(|&s| s as i64).collect(),
            num_classes: nc,
        }
    }

    pub fn num_classes(&self) -> i64 {
        self.num_classes
    }

    pub fn strides(&self) -> &[i64] {
        &self.strides
    }

    /// Raw outputs per level, [B, 4 + 1 + C, h, w] = cat[reg, obj, cls] (the channel order of
    /// RVT's train output; obj comes from the regression branch).
    pub fn forward_t(&self, xs: &[Tensor], train: bool) -> Vec<Tensor> {
        xs.iter()
            .enumerate()
            .map(|(k, x)| {
                let x = self.stems[k].forward_t(x, train);
                let cls_feat = self.cls_convs[k]
                    .iter()
                    .fold(x.shallow_clone(), |t, c| c.forward_t(&t, train));
                let cls = self.cls_preds[k].forward(&cls_feat);
                let reg_feat = self.reg_convs[k]
                    .iter()
                    .fold(x, |t, c| c.forward_t(&t, train));
                let reg = self.reg_preds[k].forward(&reg_feat);
                let obj = self.obj_preds[k].forward(&reg_feat);
                Tensor::cat(&[reg, obj, cls], 1)
            })
            .collect()
    }

    /// Eval-mode decoding (`decode_outputs`, REFERENCE §3.2): [B, A, 5+C] with
    /// `cx = (tx + j)·s`, `cy = (ty + i)·s`, `w = exp(tw)·s`, `h = exp(th)·s` (no +0.5) and
    /// sigmoid objectness and class scores.
    pub fn decode(&self, levels: &[Tensor]) -> Tensor {
        // [B, 5+C, h, w] each -> sigmoid on obj/cls -> [B, 5+C, A] -> [B, A, 5+C]
        let flat: Vec<Tensor> = levels
            .iter()
            .map(|l| {
                let reg = l.narrow(1, 0, 4);
                let scores = l.narrow(1, 4, 1 + self.num_classes).sigmoid();
                Tensor::cat(&[reg, scores], 1).flatten(2, -1)
            })
            .collect();
        let out = Tensor::cat(&flat, 2).permute([0, 2, 1]);
        let (grid, strides) = self.grid(levels, out.kind(), out.device());
        let xy = (out.narrow(2, 0, 2) + &grid) * &strides;
        let wh = out.narrow(2, 2, 2).exp() * &strides;
        Tensor::cat(&[xy, wh, out.narrow(2, 4, 1 + self.num_classes)], 2)
    }

    /// Train-mode output (`get_output_and_grid` per level): decoded boxes with raw logits, plus
    /// the anchor grid, for SimOTA and the losses.
    pub fn train_outputs(&self, levels: &[Tensor]) -> HeadTrainOutput {
        let n_ch = 5 + self.num_classes;
        let flat: Vec<Tensor> = levels
            .iter()
            .map(|l| {
                let s = l.size();
                // [B, n_ch, h, w] -> [B, h·w, n_ch]
                l.view([s[0], 1, n_ch, s[2], s[3]])
                    .permute([0, 1, 3, 4, 2])
                    .reshape([s[0], s[2] * s[3], -1])
            })
            .collect();
        let raw = Tensor::cat(&flat, 1);
        let (grid, strides) = self.grid(levels, raw.kind(), raw.device());
        let raw_reg = raw.narrow(2, 0, 4);
        let xy = (raw.narrow(2, 0, 2) + &grid) * &strides;
        let wh = raw.narrow(2, 2, 2).exp() * &strides;
        let outputs = Tensor::cat(&[xy, wh, raw.narrow(2, 4, 1 + self.num_classes)], 2);
        HeadTrainOutput {
            outputs,
            raw_reg,
            grid: AnchorGrid {
                x_shifts: grid.select(2, 0).squeeze_dim(0),
                y_shifts: grid.select(2, 1).squeeze_dim(0),
                strides: strides.squeeze_dim(0).squeeze_dim(-1),
            },
        }
    }

    /// Anchor grid of the given level maps: ([1, A, 2] (j, i), [1, A, 1] stride).
    fn grid(&self, levels: &[Tensor], kind: Kind, device: Device) -> (Tensor, Tensor) {
        let mut grids = Vec::with_capacity(levels.len());
        let mut strides = Vec::with_capacity(levels.len());
        for (l, &stride) in levels.iter().zip(&self.strides) {
            let s = l.size();
            let (h, w) = (s[2], s[3]);
            let ys = Tensor::arange(h, (kind, device));
            let xs = Tensor::arange(w, (kind, device));
            let yv = ys.view([h, 1]).expand([h, w], false);
            let xv = xs.view([1, w]).expand([h, w], false);
            grids.push(Tensor::stack(&[xv, yv], 2).view([1, -1, 2]));
            strides.push(Tensor::full([1, h * w, 1], stride, (kind, device)));
        }
        (Tensor::cat(&grids, 1), Tensor::cat(&strides, 1))
    }
}
