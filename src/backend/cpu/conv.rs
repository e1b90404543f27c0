//! CPU 2-D convolution kernels (NCHW), placeholder to be written: forward, backward-input,
//! backward-weight.
use crate::backend::Conv2dShape;

/// y = conv2d(x, w).
pub fn conv2d(x: &[f32], w: &[f32], s: &Conv2dShape) -> Vec<f32> {
    let mut y = vec![0.0; s.sizes().2];
    conv2d_reference(x, w, s, &mut y);
    y
}

fn conv2d_reference(x: &[f32], w: &[f32], s: &Conv2dShape, y: &mut [f32]) {
    for n in 0..s.n {
        for co in 0..s.c_out {
            for oh in 0..s.h_out {
                for ow in 0..s.w_out {
                    let mut acc = 0.0;
                    for ci in 0..s.c_in {
                        for i in 0..s.kh {
                            for j in 0..s.kw {
                                let ih = (oh * s.stride + i) as isize - s.padding as isize;
                                let iw = (ow * s.stride + j) as isize - s.padding as isize;
                                if ih < 0 || iw < 0 || ih >= s.h as isize || iw >= s.w as isize {
                                    continue;
                                }
                                acc += x
                                    [((n * s.c_in + ci) * s.h + ih as usize) * s.w + iw as usize]
                                    * w[((co * s.c_in + ci) * s.kh + i) * s.kw + j];
                            }
                        }
                    }
                    y[((n * s.c_out + co) * s.h_out + oh) * s.w_out + ow] = acc;
                }
            }
        }
    }
}

/// dx from dy.
pub fn conv2d_backward_input(dy: &[f32], w: &[f32], s: &Conv2dShape) -> Vec<f32> {
    let mut dx = vec![0.0; s.sizes().0];
    for n in 0..s.n {
        for co in 0..s.c_out {
            for oh in 0..s.h_out {
                for ow in 0..s.w_out {
                    let g = dy[((n * s.c_out + co) * s.h_out + oh) * s.w_out + ow];
                    for ci in 0..s.c_in {
                        for i in 0..s.kh {
                            for j in 0..s.kw {
                                let ih = (oh * s.stride + i) as isize - s.padding as isize;
                                let iw = (ow * s.stride + j) as isize - s.padding as isize;
                                if ih < 0 || iw < 0 || ih >= s.h as isize || iw >= s.w as isize {
                                    continue;
                                }
                                dx[((n * s.c_in + ci) * s.h + ih as usize) * s.w + iw as usize] +=
                                    g * w[((co * s.c_in + ci) * s.kh + i) * s.kw + j];
                            }
                        }
                    }
                }
            }
        }
    }
    dx
}

/// dw from x and dy.
pub fn conv2d_backward_weight(x: &[f32], dy: &[f32], s: &Conv2dShape) -> Vec<f32> {
    let mut dw = vec![0.0; s.sizes().1];
    for n in 0..s.n {
        for co in 0..s.c_out {
            for oh in 0..s.h_out {
                for ow in 0..s.w_out {
                    let g = dy[((n * s.c_out + co) * s.h_out + oh) * s.w_out + ow];
                    for ci in 0..s.c_in {
                        for i in 0..s.kh {
                            for j in 0..s.kw {
                                let ih = (oh * s.stride + i) as isize - s.padding as isize;
                                let iw = (ow * s.stride + j) as isize - s.padding as isize;
                                if ih < 0 || iw < 0 || ih >= s.h as isize || iw >= s.w as isize {
                                    continue;
                                }
                                dw[((co * s.c_in + ci) * s.kh + i) * s.kw + j] += g * x
                                    [((n * s.c_in + ci) * s.h + ih as usize) * s.w + iw as usize];
                            }
                        }
                    }
                }
            }
        }
    }
    dw
}
