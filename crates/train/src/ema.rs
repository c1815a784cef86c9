//! An exponential moving average of the model's weights (YOLOX's `ModelEMA`), for `training.ema`:
//! after every optimizer step each floating-point variable (parameters and BatchNorm statistics)
//! moves to `ema·d + w·(1 − d)` with d = decay·(1 − exp(−updates / 2000)), so the average follows the
//! weights closely early on and smooths over the last few thousand steps later. Validation, the test
//! evaluation, `predict`, `eval` and `export` use the averaged weights when the run has them: a run's
//! numbers then depend less on where in the noise of the last steps training stopped.

use tch::{nn, Kind, Tensor};

/// The ramp of YOLOX's decay: 1 − exp(−updates / RAMP).
pub const RAMP: f64 = 2000.0;

/// The averaged weights and the count of updates behind them.
#[derive(Debug)]
pub struct Ema {
    /// The model's live variables (sharing storage with the `VarStore`), by name, floating ones only.
    live: Vec<(String, Tensor)>,
    /// Their averages, in the same order.
    shadow: Vec<Tensor>,
    pub decay: f64,
    pub updates: u64,
}

impl Ema {
    /// An average that starts at the model's current weights.
    pub fn new(vs: &nn::VarStore, decay: f64) -> Self {
        let live = live_variables(vs);
        let shadow = tch::no_grad(|| live.iter().map(|(_, t)| t.detach().copy()).collect());
        Ema {
            live,
            shadow,
            decay,
            updates: 0,
        }
    }

    /// An average restored from a checkpoint's `ema.safetensors` tensors after `updates` updates;
    /// every floating variable of the model must be among them.
    pub fn restore(
        vs: &nn::VarStore,
        decay: f64,
        saved: &[(String, Tensor)],
        updates: u64,
    ) -> Result<Self, String> {
        let mut ema = Ema::new(vs, decay);
        tch::no_grad(|| -> Result<(), String> {
            for ((name, live), shadow) in ema.live.iter().zip(&mut ema.shadow) {
                let (_, t) = saved
                    .iter()
                    .find(|(n, _)| n == name)
                    .ok_or_else(|| format!("the averaged weights lack `{name}`"))?;
                if t.size() != live.size() {
                    return Err(format!(
                        "`{name}` has shape {:?}, the model {:?}",
                        t.size(),
                        live.size()
                    ));
                }
                shadow.copy_(t);
            }
            Ok(())
        })?;
        ema.updates = updates;
        Ok(ema)
    }

    /// The decay of the next update.
    pub fn next_decay(&self) -> f64 {
        self.decay * (1.0 - (-((self.updates + 1) as f64) / RAMP).exp())
    }

    /// One update after an optimizer step.
    pub fn update(&mut self) {
        let d = self.next_decay();
        self.updates += 1;
        tch::no_grad(|| {
            for ((_, live), shadow) in self.live.iter().zip(&mut self.shadow) {
                let _ = shadow.g_mul_scalar_(d);
                let _ = shadow.g_add_(&(live.detach().to_kind(shadow.kind()) * (1.0 - d)));
            }
        });
    }

    /// The averaged weights by name (for `ema.safetensors`), on the CPU.
    pub fn named(&self) -> Vec<(String, Tensor)> {
        self.live
            .iter()
            .zip(&self.shadow)
            .map(|((n, _), s)| (n.clone(), s.to_device(tch::Device::Cpu).contiguous()))
            .collect()
    }

    /// Runs `f` with the averaged weights in the model, then puts the trained ones back (also when `f`
    /// fails).
    pub fn with_weights<T>(&self, f: impl FnOnce() -> T) -> T {
        let backup: Vec<Tensor> = tch::no_grad(|| {
            self.live
                .iter()
                .zip(&self.shadow)
                .map(|((_, live), shadow)| {
                    let b = live.detach().copy();
                    live.detach().copy_(shadow);
                    b
                })
                .collect()
        });
        let out = f();
        tch::no_grad(|| {
            for ((_, live), b) in self.live.iter().zip(&backup) {
                live.detach().copy_(b);
            }
        });
        out
    }
}

/// The floating-point variables of `vs` by name, in name order, sharing storage with it.
fn live_variables(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| {
            matches!(
                t.kind(),
                Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(value: f64) -> nn::VarStore {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let _ = root.var("w", &[3], nn::Init::Const(value));
        let _ = root.var("b", &[2], nn::Init::Const(value));
        vs
    }

    #[test]
    fn the_average_of_a_constant_model_is_that_model() {
        let vs = store(0.25);
        let mut ema = Ema::new(&vs, 0.9998);
        for _ in 0..50 {
            ema.update();
        }
        for (_, t) in ema.named() {
            assert_eq!(Vec::<f32>::try_from(&t).unwrap(), vec![0.25; t.numel()]);
        }
        assert_eq!(ema.updates, 50);
    }

    #[test]
    fn updates_follow_yolox_and_with_weights_restores_the_model() {
        let vs = store(0.0);
        let mut ema = Ema::new(&vs, 0.9998);
        let w = vs.variables()["w"].shallow_clone();
        tch::no_grad(|| {
            let _ = w.detach().fill_(1.0);
        });
        let d1 = 0.9998 * (1.0 - (-1.0f64 / 2000.0).exp());
        assert!((ema.next_decay() - d1).abs() < 1e-15);
        ema.update();
        // ema = 0·d + 1·(1 − d).
        let got = ema.named().into_iter().find(|(n, _)| n == "w").unwrap().1;
        let want = (1.0 - d1) as f32;
        assert!((f32::try_from(got.get(0)).unwrap() - want).abs() < 1e-7);
        let seen = ema.with_weights(|| f32::try_from(w.get(0)).unwrap());
        assert!((seen - want).abs() < 1e-7);
        assert_eq!(f32::try_from(w.get(0)).unwrap(), 1.0);
        // Restored from its own tensors, the average is the same.
        let back = Ema::restore(&vs, 0.9998, &ema.named(), ema.updates).unwrap();
        assert_eq!(back.updates, 1);
        assert!(back
            .named()
            .iter()
            .zip(ema.named())
            .all(|(a, b)| a.1.equal(&b.1)));
        assert!(Ema::restore(&vs, 0.9998, &[], 1)
            .unwrap_err()
            .contains("lack"));
    }
}
