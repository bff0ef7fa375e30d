//! 2-D vectors and exact signed distance functions of the primitive outlines.

/// A 2-D vector (unit coordinates for the distance functions, pixels elsewhere).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct V2 {
    pub(super) x: f32,
    pub(super) y: f32,
}

impl V2 {
    pub(super) const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }
    pub(super) fn dot(self, o: V2) -> f32 {
        self.x * o.x + self.y * o.y
    }
    pub(super) fn len(self) -> f32 {
        self.dot(self).sqrt()
    }
    fn abs(self) -> V2 {
        V2::new(self.x.abs(), self.y.abs())
    }
}

impl std::ops::Sub for V2 {
    type Output = V2;
    fn sub(self, o: V2) -> V2 {
        V2::new(self.x - o.x, self.y - o.y)
    }
}

impl std::ops::Add for V2 {
    type Output = V2;
    fn add(self, o: V2) -> V2 {
        V2::new(self.x + o.x, self.y + o.y)
    }
}

impl std::ops::Mul<f32> for V2 {
    type Output = V2;
    fn mul(self, k: f32) -> V2 {
        V2::new(self.x * k, self.y * k)
    }
}

/// Exact distance to an axis-aligned box of half-extents `b`.
pub(super) fn sd_box(p: V2, b: V2) -> f32 {
    let d = p.abs() - b;
    V2::new(d.x.max(0.0), d.y.max(0.0)).len() + d.x.max(d.y).min(0.0)
}

/// Inigo Quilez's exact equilateral triangle (apex up, side `2 r`).
pub(super) fn sd_equilateral_triangle(p: V2, r: f32) -> f32 {
    let k = 3f32.sqrt();
    let mut p = V2::new(p.x.abs() - r, p.y + r / k);
    if p.x + k * p.y > 0.0 {
        p = V2::new(p.x - k * p.y, -k * p.x - p.y) * 0.5;
    }
    p.x -= p.x.clamp(-2.0 * r, 0.0);
    -p.len() * p.y.signum()
}

/// Inigo Quilez's exact five-pointed star (outer radius `r`, inner factor `rf`).
pub(super) fn sd_star5(p: V2, r: f32, rf: f32) -> f32 {
    let k1 = V2::new(0.809_017, -0.587_785_24);
    let k2 = V2::new(-k1.x, k1.y);
    let mut p = V2::new(p.x.abs(), p.y);
    p = p - k1 * (2.0 * k1.dot(p).max(0.0));
    p = p - k2 * (2.0 * k2.dot(p).max(0.0));
    p.x = p.x.abs();
    p.y -= r;
    let ba = V2::new(-k1.y, k1.x) * rf - V2::new(0.0, 1.0);
    let h = (p.dot(ba) / ba.dot(ba)).clamp(0.0, r);
    (p - ba * h).len() * (p.y * ba.x - p.x * ba.y).signum()
}

/// Inigo Quilez's exact heart (tip at the origin, about 1.1 tall).
pub(super) fn sd_heart(p: V2) -> f32 {
    let p = V2::new(p.x.abs(), p.y);
    if p.y + p.x > 1.0 {
        return (p - V2::new(0.25, 0.75)).len() - std::f32::consts::SQRT_2 / 4.0;
    }
    let a = p - V2::new(0.0, 1.0);
    let b = p - V2::new(1.0, 1.0) * (0.5 * (p.x + p.y).max(0.0));
    a.dot(a).min(b.dot(b)).sqrt() * (p.x - p.y).signum()
}

/// Inigo Quilez's exact polygon distance.
pub(super) fn sd_polygon(p: V2, v: &[V2]) -> f32 {
    let Some(&first) = v.first() else {
        return f32::INFINITY;
    };
    let mut d = (p - first).dot(p - first);
    let mut s = 1.0f32;
    let mut j = v.len() - 1;
    for i in 0..v.len() {
        let e = v[j] - v[i];
        let w = p - v[i];
        let b = w - e * (w.dot(e) / e.dot(e)).clamp(0.0, 1.0);
        d = d.min(b.dot(b));
        let c = [p.y >= v[i].y, p.y < v[j].y, e.x * w.y > e.y * w.x];
        if c.iter().all(|&x| x) || c.iter().all(|&x| !x) {
            s = -s;
        }
        j = i;
    }
    s * d.sqrt()
}

/// Distance in pixels from `(x, y)` to the segment `a`-`b`.
pub(super) fn segment_distance(x: f32, y: f32, a: V2, b: V2) -> f32 {
    let p = V2::new(x, y);
    let (pa, ba) = (p - a, b - a);
    let h = (pa.dot(ba) / ba.dot(ba).max(1e-6)).clamp(0.0, 1.0);
    (pa - ba * h).len()
}
