//! The recurrent backbone: RVT's MaxViT-RNN (`models/detection/recurrent_backbone/maxvit_rnn.py`,
//! REFERENCE §1). Four stages, each `downsample (Cf→Cl) → num_blocks × (window, grid) attention
//! pair (Cl) → permute to Cf → ConvLSTM`; the LSTM hidden state is both the stage output and the
//! next stage's input. Sizes are the presets of [`crate::config::RvtPreset`] or any free size.
//!
//! Inputs of any height and width are zero-padded at the bottom and right to a multiple of
//! `total stride × partition size` (REFERENCE §1.5), so every stage splits into whole windows.

pub mod lstm;
pub mod maxvit;

use tch::{nn, Tensor};

use crate::config::{BackboneConfig, ConfigError};
pub use lstm::{ConvLstm, LstmState};
pub use maxvit::AttentionImpl;
use maxvit::{ConvDownsampleCf2Cl, MaxVitAttentionPair};

/// One stage (`RNNDetectorStage`): N,C,H,W in, N,C',H/f,W/f out plus the new LSTM state.
#[derive(Debug)]
pub struct RnnDetectorStage {
    pub downsample_cf2cl: ConvDownsampleCf2Cl,
    pub att_blocks: Vec<MaxVitAttentionPair>,
    pub lstm: ConvLstm,
}

impl RnnDetectorStage {
    pub fn new(
        p: nn::Path,
        dim_in: i64,
        dim: i64,
        factor: i64,
        num_blocks: usize,
        cfg: &BackboneConfig,
        partition: [usize; 2],
    ) -> Self {
        let downsample_cf2cl = ConvDownsampleCf2Cl::new(
            &p / "downsample_cf2cl",
            dim_in,
            dim,
            factor,
            &cfg.stage.downsample,
        );
        let pb = &p / "att_blocks";
        let att_blocks = (0..num_blocks)
            .map(|i| {
                // The downsample output is already LayerNorm-ed: skip the first norm1.
                MaxVitAttentionPair::new(&pb / i, dim, i == 0, &cfg.stage.attention, partition)
            })
            .collect();
        let lstm = ConvLstm::new(&p / "lstm", dim, &cfg.stage.lstm);
        Self {
            downsample_cf2cl,
            att_blocks,
            lstm,
        }
    }

    pub fn forward_t(&self, x: &Tensor, prev: Option<&LstmState>, train: bool) -> LstmState {
        let mut x = self.downsample_cf2cl.forward(x); // [N, C, H, W] -> [N, H', W', C']
        for blk in &self.att_blocks {
            x = blk.forward_t(&x, train);
        }
        let x = x.permute([0, 3, 1, 2]); // [N, H', W', C'] -> [N, C', H', W'] (channels-last strides)
        self.lstm.forward_t(&x, prev, train)
    }
}

/// `RNNDetector` (MaxViTRNN).
#[derive(Debug)]
pub struct MaxVitRnn {
    pub stages: Vec<RnnDetectorStage>,
    stage_dims: Vec<usize>,
    strides: Vec<usize>,
    input_multiple: [usize; 2],
}

impl MaxVitRnn {
    pub fn new(p: nn::Path, cfg: &BackboneConfig) -> Result<Self, ConfigError> {
        let partition = cfg.partition_size()?;
        let stage_dims = cfg.stage_dims();
        let ps = &p / "stages";
        let mut dim_in = cfg.input_channels as i64;
        let mut stages = Vec::new();
        for (i, (&dim, &blocks)) in stage_dims.iter().zip(&cfg.num_blocks).enumerate() {
            let factor = if i == 0 { cfg.stem.patch_size } else { 2 } as i64;
            stages.push(RnnDetectorStage::new(
                &ps / i,
                dim_in,
                dim as i64,
                factor,
                blocks,
                cfg,
                partition,
            ));
            dim_in = dim as i64;
        }
        Ok(Self {
            stages,
            stage_dims,
            strides: cfg.strides(),
            input_multiple: cfg.input_multiple()?,
        })
    }

    pub fn stage_dims(&self) -> &[usize] {
        &self.stage_dims
    }

    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// Chooses how every attention block computes softmax(q·kᵀ/√d)·v.
    pub fn set_attention_impl(&mut self, imp: AttentionImpl) {
        for stage in &mut self.stages {
            for blk in &mut stage.att_blocks {
                blk.set_attention_impl(imp);
            }
        }
    }

    /// Height and width the (padded) input must be multiples of.
    pub fn input_multiple(&self) -> [usize; 2] {
        self.input_multiple
    }

    /// Zero-pads [N, C, H, W] at the bottom and right up to the input multiple (RVT's
    /// `InputPadderFromShape`, mode 'corner', REFERENCE §1.5); a no-op when already aligned.
    pub fn pad_input(&self, x: &Tensor) -> Tensor {
        let s = x.size();
        let (h, w) = (s[2], s[3]);
        let [mh, mw] = self.input_multiple.map(|m| m as i64);
        let ph = (h + mh - 1) / mh * mh - h;
        let pw = (w + mw - 1) / mw * mw - w;
        if ph == 0 && pw == 0 {
            x.shallow_clone()
        } else {
            x.constant_pad_nd([0, pw, 0, ph])
        }
    }

    /// One time step. `x`: [N, C_in, H, W] (any H, W; padded here). `prev`: the states of the four
    /// stages from the previous step (`None`: zeros). `reset`: bool [N], rows whose state is
    /// zeroed before the step (first sample of a new sequence). Returns the four stage outputs
    /// (= LSTM h, [N, C_s, H/stride_s, W/stride_s]) and the new states.
    pub fn forward_t(
        &self,
        x: &Tensor,
        prev: Option<&[LstmState]>,
        reset: Option<&Tensor>,
        train: bool,
    ) -> (Vec<Tensor>, Vec<LstmState>) {
        let prev: Option<Vec<LstmState>> = prev.map(|states| {
            states
                .iter()
                .map(|s| match reset {
                    Some(r) => s.reset_rows(r),
                    None => s.shallow_clone(),
                })
                .collect()
        });
        let mut x = self.pad_input(x);
        let mut features = Vec::with_capacity(self.stages.len());
        let mut states = Vec::with_capacity(self.stages.len());
        for (i, stage) in self.stages.iter().enumerate() {
            let state = stage.forward_t(&x, prev.as_ref().map(|p| &p[i]), train);
            x = state.h.shallow_clone();
            features.push(state.h.shallow_clone());
            states.push(state);
        }
        (features, states)
    }
}
