//! AdamW and the OneCycle learning-rate schedule of REFERENCE §4.1, written out so their state is ours
//! to checkpoint (exact resume) and the numbers are PyTorch's: `torch.optim.AdamW` (single-tensor
//! path, no amsgrad) and `OneCycleLR(anneal_strategy='linear', cycle_momentum=False)`.

use tch::{nn, Tensor};

/// RVT's OneCycle: ramp from max/div_factor to max over `pct_start` of the steps, then down to
/// max/final_div_factor at the last step (RVT's final_div_factor is max_lr / final_lr).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneCycle {
    pub max_lr: f64,
    pub total_steps: u64,
    pub pct_start: f64,
    pub div_factor: f64,
    pub final_div_factor: f64,
}

impl OneCycle {
    /// The learning rate of optimiser step `step` (0-based), as PyTorch's `get_lr` computes it.
    pub fn lr(&self, step: u64) -> f64 {
        let initial = self.max_lr / self.div_factor;
        let min = self.max_lr / self.final_div_factor;
        let step = step as f64;
        let end1 = self.pct_start * self.total_steps as f64 - 1.0;
        let end2 = self.total_steps as f64 - 1.0;
        let lin = |a: f64, b: f64, pct: f64| (b - a) * pct + a;
        // A phase of zero length (pct_start · total_steps = 1, or a one-step run) is over at once;
        // PyTorch divides by zero there (ZeroDivisionError), a NaN here would poison every weight.
        let frac = |num: f64, den: f64| if den > 0.0 { num / den } else { 1.0 };
        if step <= end1 {
            lin(initial, self.max_lr, frac(step, end1))
        } else {
            lin(self.max_lr, min, frac(step - end1, end2 - end1))
        }
    }
}

/// AdamW over every trainable variable of a `VarStore`, with named state tensors.
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Optimiser steps taken (PyTorch's per-parameter `step`, shared since all step together).
    pub step: u64,
    params: Vec<(String, Tensor)>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
}

impl AdamW {
    pub fn new(vs: &nn::VarStore, weight_decay: f64) -> Self {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros = |p: &Tensor| p.zeros_like().detach();
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            step: 0,
            exp_avg: params.iter().map(|(_, p)| zeros(p)).collect(),
            exp_avg_sq: params.iter().map(|(_, p)| zeros(p)).collect(),
            params,
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// The L2 norm of all gradients (logged as `train/grad_norm`).
    /// Every parameter's gradient in parameter order, for the all-reduce (a parameter without one
    /// contributes zeros, so every process's bucket layout is the same).
    pub fn grads(&self) -> Vec<Tensor> {
        self.params
            .iter()
            .map(|(_, p)| {
                let g = p.grad();
                if g.defined() {
                    g
                } else {
                    p.zeros_like()
                }
            })
            .collect()
    }

    /// The L2 norm of all gradients together, read back once (one host synchronisation per step on
    /// a GPU, not one per parameter).
    pub fn grad_norm(&self) -> f64 {
        let squares: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(|g| g.defined())
            .map(|g| g.square().sum(tch::Kind::Double))
            .collect();
        if squares.is_empty() {
            return 0.0;
        }
        Tensor::stack(&squares, 0)
            .sum(tch::Kind::Double)
            .double_value(&[])
            .sqrt()
    }

    /// Multiplies every gradient by `f` (unscaling after a loss-scaled backward pass).
    pub fn scale_grads(&mut self, f: f64) {
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.g_mul_scalar_(f);
            }
        }
    }

    /// Clips every gradient element to `[−v, v]` (`gradient_clip_algorithm='value'`).
    pub fn clip_grad_value(&mut self, v: f64) {
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.clamp_(-v, v);
            }
        }
    }

    /// One AdamW step with learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        let step_size = lr / bc1;
        let bc2_sqrt = bc2.sqrt();
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
                let m = &mut self.exp_avg[i];
                let _ = m.lerp_(&g, 1.0 - self.beta1);
                let v = &mut self.exp_avg_sq[i];
                let _ = v.g_mul_scalar_(self.beta2);
                let _ = v.addcmul_(&g, &g.g_mul_scalar(1.0 - self.beta2));
                let denom = (v.sqrt() / bc2_sqrt).g_add_scalar(self.eps);
                let _ = p.addcdiv_(&(&*m * (-step_size)), &denom);
            }
        });
    }

    /// State tensors named `exp_avg.<param>` / `exp_avg_sq.<param>` for checkpoints.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("exp_avg.{name}"), self.exp_avg[i].shallow_clone()));
            out.push((
                format!("exp_avg_sq.{name}"),
                self.exp_avg_sq[i].shallow_clone(),
            ));
        }
        out
    }

    /// Restores what [`AdamW::state_tensors`] saved; every parameter must be present.
    pub fn load_state(&mut self, tensors: &[(String, Tensor)], step: u64) -> Result<(), String> {
        let find = |k: &str| tensors.iter().find(|(n, _)| n == k).map(|(_, t)| t);
        tch::no_grad(|| {
            for (i, (name, _)) in self.params.iter().enumerate() {
                let m = find(&format!("exp_avg.{name}"))
                    .ok_or_else(|| format!("optimizer state lacks exp_avg.{name}"))?;
                let v = find(&format!("exp_avg_sq.{name}"))
                    .ok_or_else(|| format!("optimizer state lacks exp_avg_sq.{name}"))?;
                if m.size() != self.exp_avg[i].size() || v.size() != self.exp_avg_sq[i].size() {
                    return Err(format!("optimizer state for {name} has the wrong shape"));
                }
                self.exp_avg[i].copy_(m);
                self.exp_avg_sq[i].copy_(v);
            }
            Ok(())
        })?;
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cycle_matches_pytorch_endpoints() {
        let s = OneCycle {
            max_lr: 2e-4,
            total_steps: 100_000,
            pct_start: 0.005,
            div_factor: 25.0,
            final_div_factor: 10_000.0,
        };
        assert!((s.lr(0) - 2e-4 / 25.0).abs() < 1e-18);
        assert!((s.lr(499) - 2e-4).abs() < 1e-15, "{}", s.lr(499));
        assert!((s.lr(99_999) - 2e-8).abs() < 1e-18, "{}", s.lr(99_999));
        // halfway down the linear decay
        let mid = 499.0 + (99_999.0 - 499.0) / 2.0;
        assert!((s.lr(mid as u64) - (2e-4 + 2e-8) / 2.0).abs() < 1e-9);
    }

    #[test]
    fn zero_length_phases_give_finite_rates() {
        // pct_start · total_steps = 1: the warm-up phase has length 0 (PyTorch raises there).
        let s = OneCycle {
            max_lr: 2e-3,
            total_steps: 20,
            pct_start: 0.05,
            div_factor: 25.0,
            final_div_factor: 100.0,
        };
        assert_eq!(s.lr(0), 2e-3);
        assert!((s.lr(19) - 2e-5).abs() < 1e-18);
        assert!((0..20).all(|k| s.lr(k).is_finite() && s.lr(k) > 0.0));
        // a one-step run: both phases are empty
        let one = OneCycle {
            total_steps: 1,
            ..s
        };
        assert!(one.lr(0).is_finite());
    }

    #[test]
    fn adamw_matches_the_closed_form_first_step() {
        // After one step from zero state, AdamW moves each weight by lr·sign(g) (plus decay).
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let w = vs
            .root()
            .var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0, 3.0]));
        let mut opt = AdamW::new(&vs, 0.1);
        let loss = (&w * Tensor::from_slice(&[2.0f32, -1.0, 0.5])).sum(tch::Kind::Float);
        loss.backward();
        opt.step(0.01);
        let got = Vec::<f32>::try_from(&w).unwrap();
        let want = [
            1.0 * (1.0 - 0.001) - 0.01,
            -2.0 * (1.0 - 0.001) + 0.01,
            3.0 * (1.0 - 0.001) - 0.01,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        assert_eq!(opt.state_tensors().len(), 2);
    }
}
