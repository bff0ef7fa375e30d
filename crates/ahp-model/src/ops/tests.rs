//! The fused kernels against their primitive-op formulations: outputs and input gradients.

use candle_core::{DType, Device, Tensor, Var, D};

use super::cpu::Res;
use super::{
    frozen_linear, frozen_linear_low_rank, layer_norm, merge_heads, quick_gelu,
    scaled_softmax_last_dim, split_heads,
};

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .unwrap_or(f32::INFINITY)
}

/// Runs `fused` and `reference` on the same input (a variable), backpropagates
/// `sum(out * w)` for a fixed random `w` through both and compares outputs and input
/// gradients.
fn check(
    shape: &[usize],
    fused: impl Fn(&Tensor) -> Res<Tensor>,
    reference: impl Fn(&Tensor) -> Res<Tensor>,
    tol: f32,
) -> Res<()> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.5, shape, &dev)?)?;
    let a = fused(x.as_tensor())?;
    let b = reference(x.as_tensor())?;
    assert_eq!(a.dims(), b.dims());
    assert!(max_diff(&a, &b) <= tol, "forward {}", max_diff(&a, &b));
    let w = Tensor::randn(0f32, 1.0, a.dims(), &dev)?;
    let ga = (a * &w)?.sum_all()?.backward()?;
    let gb = (b * &w)?.sum_all()?.backward()?;
    let (ga, gb) = (
        ga.get(x.as_tensor()).expect("fused grad"),
        gb.get(x.as_tensor()).expect("reference grad"),
    );
    assert!(max_diff(ga, gb) <= tol, "backward {}", max_diff(ga, gb));
    Ok(())
}

#[test]
fn frozen_linear_matches_matmul_and_skips_weight_grad() -> Res<()> {
    let dev = Device::Cpu;
    let w = Tensor::randn(0f32, 1.0, (5, 7), &dev)?;
    let b = Tensor::randn(0f32, 1.0, 5, &dev)?;
    check(
        &[6, 7],
        |x| frozen_linear(x, &w, Some(&b)),
        |x| x.matmul(&w.t()?)?.broadcast_add(&b),
        1e-4,
    )?;
    check(
        &[3, 7],
        |x| frozen_linear(x, &w, None),
        |x| x.matmul(&w.t()?),
        1e-4,
    )
}

#[test]
fn frozen_linear_keeps_leading_dims() -> Res<()> {
    let dev = Device::Cpu;
    let w = Tensor::randn(0f32, 1.0, (5, 7), &dev)?;
    let b = Tensor::randn(0f32, 1.0, 5, &dev)?;
    check(
        &[2, 3, 7],
        |x| frozen_linear(x, &w, Some(&b)),
        |x| x.broadcast_matmul(&w.t()?)?.broadcast_add(&b),
        1e-4,
    )
}

#[test]
fn frozen_linear_low_rank_matches_composite() -> Res<()> {
    let dev = Device::Cpu;
    let w = Tensor::randn(0f32, 1.0, (6, 7), &dev)?;
    let b = Tensor::randn(0f32, 1.0, 6, &dev)?;
    let a = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 7), &dev)?)?;
    let bd = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 6), &dev)?)?;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 4, 7), &dev)?)?;
    let fused = frozen_linear_low_rank(x.as_tensor(), &w, Some(&b), &a, &bd)?;
    let reference = (x.broadcast_matmul(&w.t()?)?.broadcast_add(&b)?
        + x.broadcast_matmul(&a.t()?)?.broadcast_matmul(&bd)?)?;
    assert!(max_diff(&fused, &reference) < 1e-4);
    let wl = Tensor::randn(0f32, 1.0, fused.dims(), &dev)?;
    let g1 = (fused * &wl)?.sum_all()?.backward()?;
    let g2 = (reference * &wl)?.sum_all()?.backward()?;
    for v in [&x, &a, &bd] {
        let (d1, d2) = (
            g1.get(v.as_tensor()).expect("fused grad"),
            g2.get(v.as_tensor()).expect("reference grad"),
        );
        assert!(
            max_diff(d1, d2) < 1e-3,
            "{:?}: {}",
            v.dims(),
            max_diff(d1, d2)
        );
    }
    // A constant input gets no gradient (and costs no GEMM).
    let c = Tensor::randn(0f32, 1.0, (2, 4, 7), &dev)?;
    let g = frozen_linear_low_rank(&c, &w, None, &a, &bd)?
        .sum_all()?
        .backward()?;
    assert!(g.get(&c).is_none() && g.get(a.as_tensor()).is_some());
    Ok(())
}

#[test]
fn split_and_merge_heads_match_reshape_transpose() -> Res<()> {
    check(
        &[2, 5, 12],
        |x| split_heads(x, 3),
        |x| x.reshape((2, 5, 3, 4))?.transpose(1, 2)?.contiguous(),
        0.0,
    )?;
    check(
        &[2, 3, 5, 4],
        merge_heads,
        |x| x.transpose(1, 2)?.reshape((2, 5, 12)),
        0.0,
    )
}

#[test]
fn layer_norm_matches_composite() -> Res<()> {
    let dev = Device::Cpu;
    let g = Tensor::randn(1f32, 0.3, 16, &dev)?;
    let b = Tensor::randn(0f32, 0.3, 16, &dev)?;
    let eps = 1e-5;
    check(
        &[2, 3, 16],
        |x| layer_norm(x, &g, &b, eps),
        |x| {
            let mean = (x.sum_keepdim(D::Minus1)? / 16.0)?;
            let c = x.broadcast_sub(&mean)?;
            let var = (c.sqr()?.sum_keepdim(D::Minus1)? / 16.0)?;
            c.broadcast_div(&(var + eps)?.sqrt()?)?
                .broadcast_mul(&g)?
                .broadcast_add(&b)
        },
        1e-4,
    )
}

#[test]
fn scaled_softmax_matches_composite() -> Res<()> {
    check(
        &[2, 3, 4, 9],
        |x| scaled_softmax_last_dim(x, 0.125),
        |x| candle_nn::ops::softmax(&(x * 0.125)?, D::Minus1),
        1e-5,
    )
}

#[test]
fn quick_gelu_matches_composite() -> Res<()> {
    check(
        &[3, 5000],
        quick_gelu,
        |x| x.broadcast_mul(&candle_nn::ops::sigmoid(&(x * 1.702)?)?),
        1e-5,
    )
}

#[test]
fn bad_inputs_are_errors() -> Res<()> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::zeros((2, 4), DType::F32, &dev)?)?;
    let w = Tensor::zeros((3, 5), DType::F32, &dev)?;
    assert!(frozen_linear(x.as_tensor(), &w, None).is_err());
    let w4 = Tensor::zeros((3, 4), DType::F32, &dev)?;
    let short_bias = Tensor::zeros(2, DType::F32, &dev)?;
    let e = frozen_linear(x.as_tensor(), &w4, Some(&short_bias)).expect_err("bias length");
    assert!(e.to_string().contains("bias has 2 entries"), "{e}");
    let g = Tensor::ones(3, DType::F32, &dev)?;
    assert!(layer_norm(x.as_tensor(), &g, &g, 1e-5).is_err());
    Ok(())
}
