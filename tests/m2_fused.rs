//! M2 trained with the fused VAE ops (`M2Config::fused = true`) and with the composed ELBO
//! (`fused = false`) from the same seed follows the same loss curve: both paths compute the same
//! maths from the same random draws (ε keyed identically), so they differ only by float rounding
//! (~1e-7 relative per step, which Adam carries forward). 30 steps on the scikit-learn digits,
//! one Adam step per `fit` "epoch" so that every step's loss is reported; `--nocapture` prints the
//! two curves.

use ssvae::data::{self, DatasetName};
use ssvae::models::{M2Config, M2};
use ssvae::nn::Activation;
use ssvae::rng::Rng;
use ssvae::train::{fit, EpochReport, TrainConfig};
use ssvae::Device;
use std::path::Path;

const STEPS: usize = 30;
const SEED: u64 = 3;

fn train(fused: bool) -> Vec<EpochReport> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets");
    let tt = data::load(DatasetName::Digits, &dir).expect("digits dataset");
    let labels = 20;
    let split = data::split(&tt.train.y, tt.train.classes, labels, 0, SEED).unwrap();
    let mut rng = Rng::new(SEED, 0x1417);
    let model = M2::new(
        M2Config {
            x_dim: tt.train.dim(),
            classes: tt.train.classes,
            hidden: 64,
            z_dim: 8,
            alpha: 0.1 * tt.train.n as f32 / labels as f32,
            labelled_weight: 1.0,
            activation: Activation::Relu,
            fused,
        },
        &mut rng,
        Device::Cpu,
    )
    .unwrap();
    let cfg = TrainConfig {
        epochs: STEPS,
        batch_size: 64,
        labelled_batch: 20,
        lr: 1e-3,
        lr_milestones: Vec::new(),
        lr_gamma: 0.1,
        seed: SEED,
        device: Device::Cpu,
        eval_batch: 400,
        steps_per_epoch: Some(1),
        use_unlabelled: true,
        augment_shift: 0,
        binarize: false,
    };
    fit(&model, &tt.train, &tt.test, &split, &cfg, |_| Ok(())).unwrap()
}

fn term(r: &EpochReport, name: &str) -> f64 {
    r.train
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no term {name}"))
}

#[test]
fn fused_and_composed_m2_train_identically() {
    let fused = train(true);
    let composed = train(false);
    assert_eq!(fused.len(), STEPS);
    println!("step  loss(fused)   loss(unfused)  rel.diff   test -ELBO fused / unfused");
    let mut worst = 0.0f64;
    for (f, c) in fused.iter().zip(&composed) {
        let (a, b) = (term(f, "loss"), term(c, "loss"));
        let r = (a - b).abs() / b.abs();
        let (ea, eb) = (f.test_neg_elbo.unwrap(), c.test_neg_elbo.unwrap());
        println!(
            "{:>4}  {a:>12.5}  {b:>12.5}  {r:>9.2e}   {ea:.4} / {eb:.4}",
            f.epoch
        );
        for name in ["labelled", "ce", "unlabelled"] {
            let (x, y) = (term(f, name), term(c, name));
            let rt = (x - y).abs() / y.abs().max(1e-12);
            assert!(rt <= 1e-4, "step {}: term {name} {x} vs {y}", f.epoch);
        }
        assert!(r <= 1e-4, "step {}: loss {a} vs {b} (rel {r:e})", f.epoch);
        let re = (ea - eb).abs() / eb.abs();
        assert!(re <= 1e-4, "step {}: test -ELBO {ea} vs {eb}", f.epoch);
        worst = worst.max(r);
    }
    println!("worst relative loss difference over {STEPS} steps: {worst:.2e}");
    // and training did something
    let (first, last) = (term(&fused[0], "loss"), term(&fused[STEPS - 1], "loss"));
    assert!(last < first, "loss went from {first} to {last}");
}
