//! Layers made of several nodes: LayerNorm, linear projections and the MLP activations.

use ahp_spec::Activation;
use candle_core::{DType, Tensor};

use super::builder::{attr_float, attr_int, Builder};
use super::weights::{get, Weights};
use crate::error::Result;

impl Builder {
    /// LayerNorm over the last axis with `{prefix}.weight` and `{prefix}.bias`:
    /// `LayerNormalization` from opset 17, else its decomposition.
    pub fn layer_norm(
        &mut self,
        x: &str,
        prefix: &str,
        eps: f64,
        weights: &Weights,
    ) -> Result<String> {
        let wn = format!("{prefix}.weight");
        let w = self.tensor(&wn, get(weights, &wn)?)?;
        let bn = format!("{prefix}.bias");
        let b = self.tensor(&bn, get(weights, &bn)?)?;
        if self.opset() >= 17 {
            let attrs = vec![attr_int("axis", -1), attr_float("epsilon", eps as f32)];
            return Ok(self.step("LayerNormalization", prefix, "out", &[x, &w, &b], attrs));
        }
        let mean = self.reduce_last("ReduceMean", &format!("{prefix}/mean"), x);
        let centered = self.step("Sub", prefix, "centered", &[x, &mean], vec![]);
        let sq = self.step("Mul", prefix, "sq", &[&centered, &centered], vec![]);
        let var = self.reduce_last("ReduceMean", &format!("{prefix}/var"), &sq);
        let eps = self.scalar(&format!("{prefix}.eps"), eps as f32)?;
        let var_eps = self.step("Add", prefix, "var_eps", &[&var, &eps], vec![]);
        let std = self.step("Sqrt", prefix, "std", &[&var_eps], vec![]);
        let normed = self.step("Div", prefix, "normed", &[&centered, &std], vec![]);
        let scaled = self.step("Mul", prefix, "scaled", &[&normed, &w], vec![]);
        Ok(self.step("Add", prefix, "out", &[&scaled, &b], vec![]))
    }

    /// `x @ weight^T + bias` with `weight` `[out, in]` stored transposed as `[in, out]`.
    pub fn linear(
        &mut self,
        x: &str,
        prefix: &str,
        weight: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<String> {
        let wt = weight.to_dtype(DType::F32)?.t()?.contiguous()?;
        let w = self.tensor(&format!("{prefix}.weight_t"), &wt)?;
        let y = self.step("MatMul", prefix, "matmul", &[x, &w], vec![]);
        match bias {
            Some(b) => {
                let b = self.tensor(&format!("{prefix}.bias"), b)?;
                Ok(self.step("Add", prefix, "out", &[&y, &b], vec![]))
            }
            None => Ok(y),
        }
    }

    /// The MLP activation `act` of `x`.
    pub fn activation(&mut self, act: Activation, x: &str, prefix: &str) -> Result<String> {
        match act {
            Activation::QuickGelu => self.quick_gelu(x, prefix),
            Activation::Gelu => self.gelu(x, prefix),
            Activation::GeluTanh => self.gelu_tanh(x, prefix),
            Activation::Relu => Ok(self.step("Relu", prefix, "out", &[x], vec![])),
        }
    }

    /// `x * sigmoid(1.702 x)`.
    fn quick_gelu(&mut self, x: &str, prefix: &str) -> Result<String> {
        let c = self.scalar(&format!("{prefix}.quick_gelu_alpha"), 1.702)?;
        let xs = self.step("Mul", prefix, "scaled", &[x, &c], vec![]);
        let s = self.step("Sigmoid", prefix, "sigmoid", &[&xs], vec![]);
        Ok(self.step("Mul", prefix, "out", &[x, &s], vec![]))
    }

    /// `x (1 + erf(x / sqrt 2)) / 2`.
    fn gelu(&mut self, x: &str, prefix: &str) -> Result<String> {
        let inv_sqrt2 = std::f32::consts::FRAC_1_SQRT_2;
        let c = self.scalar(&format!("{prefix}.inv_sqrt2"), inv_sqrt2)?;
        let one = self.scalar(&format!("{prefix}.one"), 1.0)?;
        let half = self.scalar(&format!("{prefix}.half"), 0.5)?;
        let xs = self.step("Mul", prefix, "scaled", &[x, &c], vec![]);
        let e = self.step("Erf", prefix, "erf", &[&xs], vec![]);
        let e1 = self.step("Add", prefix, "erf_plus_one", &[&e, &one], vec![]);
        let xe = self.step("Mul", prefix, "x_erf", &[x, &e1], vec![]);
        Ok(self.step("Mul", prefix, "out", &[&xe, &half], vec![]))
    }

    /// `x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2`.
    fn gelu_tanh(&mut self, x: &str, prefix: &str) -> Result<String> {
        let sqrt_2_over_pi = (2.0f32 / std::f32::consts::PI).sqrt();
        let k = self.scalar(&format!("{prefix}.sqrt_2_over_pi"), sqrt_2_over_pi)?;
        let c = self.scalar(&format!("{prefix}.cubic"), 0.044_715)?;
        let one = self.scalar(&format!("{prefix}.one"), 1.0)?;
        let half = self.scalar(&format!("{prefix}.half"), 0.5)?;
        let x2 = self.step("Mul", prefix, "x2", &[x, x], vec![]);
        let x3 = self.step("Mul", prefix, "x3", &[&x2, x], vec![]);
        let cx3 = self.step("Mul", prefix, "cx3", &[&x3, &c], vec![]);
        let inner = self.step("Add", prefix, "inner", &[x, &cx3], vec![]);
        let scaled = self.step("Mul", prefix, "scaled", &[&inner, &k], vec![]);
        let t = self.step("Tanh", prefix, "tanh", &[&scaled], vec![]);
        let t1 = self.step("Add", prefix, "tanh_plus_one", &[&t, &one], vec![]);
        let xt = self.step("Mul", prefix, "x_tanh", &[x, &t1], vec![]);
        Ok(self.step("Mul", prefix, "out", &[&xt, &half], vec![]))
    }
}
