//! Evaluation hooks on a small M2 trained briefly on digits: the importance-weighted bound
//! (IWAE) sits above the ELBO and grows with K, sampling hooks give images of the right size,
//! latent-unit activity tells collapsed units from informative ones, and models without a hook
//! say so.

use ssvae::data;
use ssvae::metrics::ACTIVE_UNIT_THRESHOLD;
use ssvae::models::{self, Arch, ModelKind, ModelSpec};
use ssvae::rng::Rng;
use ssvae::storage::Storage;
use ssvae::train::{
    evaluate_all, fit, grid, iwae_bound, latent_activity, TrainConfig, INIT_STREAM,
};
use ssvae::{nn, Device, Tensor};
use std::path::Path;

fn spec(kind: ModelKind, n_train: usize) -> ModelSpec {
    ModelSpec {
        kind,
        arch: Arch::Mlp,
        input: (1, 8, 8),
        classes: 10,
        hidden: 32,
        z_dim: 4,
        alpha: None,
        n_train,
        n_labelled: 50,
        fused: true,
        freeze_m1_after: None,
        align: false,
        drop_inactive_z1: false,
        labelled_bound_weight: None,
        a_samples: None,
    }
}

#[test]
fn iwae_bound_is_above_the_elbo_and_grows_with_k() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets");
    let tt = data::load(data::DatasetName::Digits, &dir).expect("shared digits dataset");
    let split = data::split(&tt.train.y, 10, 50, 0, 1).unwrap();
    let model = models::build(
        &spec(ModelKind::M2, tt.train.n),
        &mut Rng::new(1, INIT_STREAM),
        Device::Cpu,
    )
    .unwrap();
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 64,
        labelled_batch: 25,
        lr: 1e-3,
        lr_milestones: Vec::new(),
        lr_gamma: 0.1,
        seed: 1,
        device: Device::Cpu,
        eval_batch: 400,
        steps_per_epoch: None,
        use_unlabelled: true,
        augment_shift: 0,
        binarize: false,
    };
    fit(
        model.as_ref(),
        &tt.train,
        &tt.test,
        &split,
        &cfg,
        |_| Ok(()),
    )
    .unwrap();
    let ev = evaluate_all(model.as_ref(), &tt.test, &cfg).unwrap();
    let elbo = -ev.neg_elbo.unwrap();
    let b1 = iwae_bound(
        model.as_ref(),
        &tt.test,
        1,
        2048,
        1,
        Device::Cpu,
        |_| Ok(()),
    )
    .unwrap();
    let b16 = iwae_bound(model.as_ref(), &tt.test, 16, 2048, 1, Device::Cpu, |_| {
        Ok(())
    })
    .unwrap();
    // Chunking the K draws (budget below K) combines exactly: same bound up to the draws.
    let b16c = iwae_bound(model.as_ref(), &tt.test, 16, 5, 1, Device::Cpu, |_| Ok(())).unwrap();
    assert!(b1 > elbo, "K=1 bound {b1} below the ELBO {elbo}");
    assert!(b16 > b1, "K=16 bound {b16} below K=1 {b1}");
    assert!((b16 - b16c).abs() < 0.2, "chunked {b16c} vs {b16}");
    assert!(b16 < 0.0);
    for v in [ev.acc.unwrap(), ev.nmi.unwrap()] {
        assert!((0.0..=1.0).contains(&v));
    }

    // Sampling hooks: a 3×4 class grid and a 2-row analogy grid.
    let s = spec(ModelKind::M2, tt.train.n);
    let g = grid::class_grid(
        model.as_ref(),
        &s,
        &[0, 1, 2],
        4,
        &mut Rng::new(0, 1),
        Device::Cpu,
    )
    .unwrap();
    assert_eq!((g.rows, g.cols, g.image_size()), (3, 4, (35, 26)));
    assert!(g.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    let a = grid::analogy_grid(model.as_ref(), &tt.test, &[0, 1], 10, Device::Cpu).unwrap();
    assert_eq!((a.rows, a.cols), (2, 11));
    assert_eq!(&a.pixels[..64], tt.test.image(0).unwrap());
    let big = g.scaled(3).unwrap();
    assert_eq!(big.image_size(), (4 * 24 + 3, 3 * 24 + 2));
    assert_eq!(big.pixels[0..3], [g.pixels[0]; 3]);
    assert_eq!(big.pixels[24 * 3 + 2], g.pixels[8]);
    let png = g.to_png().unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

#[test]
fn models_without_hooks_say_so() {
    let c = models::build(
        &spec(ModelKind::Classifier, 1000),
        &mut Rng::new(0, INIT_STREAM),
        Device::Cpu,
    )
    .unwrap();
    let x = Tensor::zeros([2, 64], Device::Cpu).unwrap();
    let err = c.log_weights(&x, 3, &mut Rng::new(0, 0)).err().unwrap();
    assert!(err.to_string().contains("not supported"), "{err}");
    let z = Tensor::zeros([2, 4], Device::Cpu).unwrap();
    let err = c.decode_class(&z, &z).err().unwrap();
    assert!(err.to_string().contains("classifier"), "{err}");
}

#[test]
fn latent_activity_tells_collapsed_units_from_informative_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets");
    let tt = data::load(data::DatasetName::Digits, &dir).expect("shared digits dataset");
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 64,
        labelled_batch: 25,
        lr: 1e-3,
        lr_milestones: Vec::new(),
        lr_gamma: 0.1,
        seed: 2,
        device: Device::Cpu,
        eval_batch: 150,
        steps_per_epoch: None,
        use_unlabelled: true,
        augment_shift: 0,
        binarize: false,
    };
    let build = |kind| {
        let mut rng = Rng::new(2, INIT_STREAM);
        models::build(&spec(kind, tt.train.n), &mut rng, Device::Cpu).unwrap()
    };
    for kind in [
        ModelKind::Vae,
        ModelKind::M1,
        ModelKind::M1M2,
        ModelKind::Shot,
        ModelKind::M2,
    ] {
        let model = build(kind);
        // A fresh encoder's means depend on x: every one of the 4 units varies.
        let var = latent_activity(model.as_ref(), &tt.test, &cfg).unwrap();
        assert_eq!(var.len(), 4, "{kind}");
        assert!(
            var.iter().all(|v| v.is_finite() && *v > 0.0),
            "{kind}: {var:?}"
        );
        // Zero the posterior-mean head: E[z|x] = 0 for every x, so no unit is active.
        for (name, t) in nn::state(model.as_ref(), "") {
            if name.contains("enc_mu.") {
                *t.storage_mut() =
                    Storage::from_slice(&vec![0.0; t.elem_count()], Device::Cpu).unwrap();
            }
        }
        let var = latent_activity(model.as_ref(), &tt.test, &cfg).unwrap();
        assert!(var.iter().all(|&v| v == 0.0), "{kind}: {var:?}");
        assert!(var.iter().all(|&v| v <= ACTIVE_UNIT_THRESHOLD));
    }
    for kind in [ModelKind::Gmvae, ModelKind::Classifier] {
        let model = build(kind);
        let err = latent_activity(model.as_ref(), &tt.test, &cfg).unwrap_err();
        assert!(err.to_string().contains("--active-units"), "{kind}: {err}");
    }
}

/// M2's posterior of z given x alone is the mixture q(z|x) = Σ_y q(y|x)·q(z|x,y), so its mean
/// (what --active-units measures) is the q(y|x)-weighted sum of the class-conditional means.
#[test]
fn m2_latent_mean_weighs_each_class_mean_by_q_y_given_x() {
    let (n, k, z) = (5, 10, 4);
    let model = models::build(
        &spec(ModelKind::M2, 1000),
        &mut Rng::new(3, INIT_STREAM),
        Device::Cpu,
    )
    .unwrap();
    let x = Tensor::rand(vec![n, 64], Rng::new(1, 2).next_key(n * 64), Device::Cpu).unwrap();
    let mean = model.latent_mean(&x).unwrap();
    assert_eq!(mean.dims(), [n, z]);
    let q = model
        .classify(&x)
        .unwrap()
        .softmax()
        .unwrap()
        .to_vec()
        .unwrap();
    let mut want = vec![0.0f64; n * z];
    let mut class_means = Vec::new();
    for y in 0..k as u32 {
        let onehot = Tensor::one_hot(&[y; 5], k, Device::Cpu).unwrap();
        let mu = model.style(&x, &onehot).unwrap().to_vec().unwrap();
        for (i, w) in want.iter_mut().enumerate() {
            *w += q[(i / z) * k + y as usize] as f64 * mu[i] as f64;
        }
        class_means.push(mu);
    }
    let mean = mean.to_vec().unwrap();
    for (got, want) in mean.iter().zip(&want) {
        assert!((*got as f64 - want).abs() < 1e-5, "{mean:?} vs {want:?}");
    }
    // Not any one class's mean: y is summed out.
    assert!(class_means.iter().all(|mu| mu != &mean));
}
