//! M2 on the 8×8 digits with 50 labels, through the library: load, split, build, train, and
//! the test error after every epoch. The data directory is `$SSVAE_DATA_DIR`, else
//! `../shared/datasets` (a `digits/digits.csv.gz` inside).
//!
//! ```text
//! cargo run --release --example train_m2
//! ```
use ssvae::data::{self, DatasetName};
use ssvae::models::{self, Arch, ModelKind, ModelSpec};
use ssvae::rng::Rng;
use ssvae::train::{self, TrainConfig, INIT_STREAM};
use ssvae::Device;

fn main() -> ssvae::Result<()> {
    let tt = data::load(DatasetName::Digits, &data::default_data_dir())?;
    let split = data::split(&tt.train.y, tt.train.classes, 50, 0, 0)?;
    let spec = ModelSpec {
        hidden: 128,
        ..ModelSpec::new(ModelKind::M2, Arch::Mlp, &tt.train, &split)
    };
    let model = models::build(&spec, &mut Rng::new(0, INIT_STREAM), Device::Cpu)?;
    let cfg = TrainConfig {
        epochs: 5,
        ..TrainConfig::default()
    };
    train::fit(model.as_ref(), &tt.train, &tt.test, &split, &cfg, |r| {
        println!("epoch {}: test error {:.2}%", r.epoch, 100.0 * r.test_error);
        Ok(())
    })?;
    Ok(())
}
