//! Checkpoint format 2, the self-describing one: conv biases stored as PyTorch's [C] (in the
//! model and in Adam's moments), `config.json`'s `description` (ssvae version, likelihood,
//! activation, the α used, the layer list) and the single JSON metadata key of the safetensors
//! files; a format-1 checkpoint (biases [1, C, 1, 1], the old `ssvae_position` stamp) still
//! evaluates to the same test error and resumes into format 2; and the descriptions and
//! defaults of every model kind ([`ModelSpec::new`], [`ModelSpec::effective_alpha`]).

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::{json, Value};
use ssvae::data::{self, DatasetName};
use ssvae::models::{self, Arch, ModelKind, ModelSpec};
use ssvae::rng::Rng;
use ssvae::train::checkpoint::{FORMAT_VERSION, METADATA_KEY};
use ssvae::Device;
use std::collections::HashMap;
use std::path::Path;

mod cli_support;

use cli_support::{data_dir, ok, temp_dir, train_args};

/// The conv biases of a conv M2 (the model's tensor names; the optimiser's are `m/…`, `v/…`).
const CONV_BIASES: [(&str, usize); 4] = [
    ("trunk.conv1.bias", 32),
    ("trunk.conv2.bias", 64),
    ("dec.deconv1.bias", 32),
    ("dec.deconv2.bias", 1),
];

/// A conv M2 trained on digits for one epoch of 3 steps in `dir`; returns its checkpoint.
fn conv_run(dir: &Path) -> std::path::PathBuf {
    let dd = data_dir();
    let d = dir.to_str().unwrap();
    let extra = [
        "--arch",
        "conv",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "3",
        "--device",
        "cpu",
    ];
    ok(&train_args(&dd, d, &extra));
    dir.join("epoch-0001")
}

/// The test-error line of `ssvae eval`.
fn test_error(dir: &Path) -> String {
    let out = ok(&[
        "eval",
        dir.to_str().unwrap(),
        "--data-dir",
        &data_dir(),
        "--device",
        "cpu",
    ]);
    out.lines()
        .find(|l| l.starts_with("test error"))
        .unwrap_or_else(|| panic!("no test error in {out}"))
        .to_string()
}

/// Shapes by name and the metadata of a safetensors file.
fn header(path: &Path) -> (HashMap<String, Vec<usize>>, HashMap<String, String>) {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let shapes = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec()))
        .collect();
    (shapes, meta.metadata().clone().unwrap_or_default())
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn conv_biases_are_c_and_the_files_describe_the_model() {
    let ckpt = conv_run(&temp_dir("v2"));
    let (model, meta) = header(&ckpt.join("model.safetensors"));
    let (opt, opt_meta) = header(&ckpt.join("optimizer.safetensors"));
    for (name, c) in CONV_BIASES {
        assert_eq!(model[name], vec![c], "{name}");
        assert_eq!(opt[&format!("m/{name}")], vec![c], "m/{name}");
        assert_eq!(opt[&format!("v/{name}")], vec![c], "v/{name}");
    }

    // One metadata key per file, JSON: the position, and for the model what it is.
    assert_eq!(meta.keys().collect::<Vec<_>>(), [METADATA_KEY]);
    let stamp: Value = serde_json::from_str(&meta[METADATA_KEY]).unwrap();
    assert_eq!(stamp["format"], FORMAT_VERSION);
    assert_eq!(
        (stamp["epoch"].clone(), stamp["step"].clone()),
        (json!(1), json!(3))
    );
    assert_eq!(stamp["model"]["kind"], "m2");
    assert_eq!(stamp["model"]["arch"], "conv");
    assert_eq!(stamp["description"]["activation"], "relu");
    let opt_stamp: Value = serde_json::from_str(&opt_meta[METADATA_KEY]).unwrap();
    assert_eq!(
        opt_stamp,
        json!({"format": FORMAT_VERSION, "epoch": 1, "step": 3})
    );

    let config = read_json(&ckpt.join("config.json"));
    assert_eq!(config["format"], 2);
    let d = &config["description"];
    assert_eq!(
        stamp["description"], *d,
        "the metadata repeats config.json's description"
    );
    assert_eq!(d["ssvae_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(d["likelihood"], "bernoulli");
    assert_eq!(d["activation"], "relu");
    // "alpha": null in the spec (the model's default); the description has the value used,
    // 0.1·N/N_labelled on the 1,397 training digits with 50 labels.
    assert_eq!(config["model"]["alpha"], Value::Null);
    let alpha = d["alpha"].as_f64().unwrap();
    assert!((alpha - 0.1 * 1397.0 / 50.0).abs() < 1e-5, "{alpha}");

    // The layer list: every tensor of the file once, with its shape, under its layer.
    let layers = d["layers"].as_array().unwrap();
    let mut listed = HashMap::new();
    for l in layers {
        let name = l["name"].as_str().unwrap();
        for (k, v) in l.as_object().unwrap() {
            if let Some(shape) = v.as_array().filter(|_| k != "op") {
                let dims: Vec<usize> = shape.iter().map(|x| x.as_u64().unwrap() as usize).collect();
                assert!(listed.insert(format!("{name}.{k}"), dims).is_none());
            }
        }
    }
    assert_eq!(listed, model);
    let layer = |name: &str| layers.iter().find(|l| l["name"] == name).unwrap().clone();
    assert_eq!(
        layer("trunk.conv1"),
        json!({"name": "trunk.conv1", "op": "conv2d", "stride": 2, "padding": 1,
               "weight": [32, 1, 4, 4], "bias": [32]})
    );
    assert_eq!(
        layer("dec.deconv2"),
        json!({"name": "dec.deconv2", "op": "conv_transpose2d", "stride": 2, "padding": 1,
               "output_padding": 0, "weight": [32, 1, 4, 4], "bias": [1]})
    );
    // W_y of q(z|x,y) (2·z_dim rows for μ and log σ², z_dim 4; a column per class), no bias.
    assert_eq!(
        layer("enc_y"),
        json!({"name": "enc_y", "op": "linear", "weight": [8, 10]})
    );
}

/// `path` rewritten as format 1 wrote it: every conv bias (the names of `CONV_BIASES`, with
/// `prefix`) as [1, C, 1, 1], and the `ssvae_position` stamp as the only metadata.
fn as_format_1(path: &Path, prefixes: &[&str], epoch: usize, step: usize) {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| {
            let v1_bias = CONV_BIASES
                .iter()
                .any(|(b, _)| prefixes.iter().any(|p| n == format!("{p}{b}")));
            let shape = match (v1_bias, t.shape()) {
                (true, &[c]) => vec![1, c, 1, 1],
                (_, s) => s.to_vec(),
            };
            (n, shape, t.data().to_vec())
        })
        .collect();
    tensors.sort();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), d).unwrap(),
            )
        })
        .collect();
    let meta = HashMap::from([(
        "ssvae_position".to_string(),
        format!("epoch={epoch},step={step}"),
    )]);
    std::fs::write(path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

#[test]
fn format_1_checkpoints_still_load_and_resume_into_format_2() {
    let dir = temp_dir("v1");
    let ckpt = conv_run(&dir);
    let before = test_error(&dir);
    as_format_1(&ckpt.join("model.safetensors"), &[""], 1, 3);
    as_format_1(&ckpt.join("optimizer.safetensors"), &["m/", "v/"], 1, 3);
    let mut config = read_json(&ckpt.join("config.json"));
    config["format"] = json!(1);
    config.as_object_mut().unwrap().remove("description");
    std::fs::write(ckpt.join("config.json"), config.to_string()).unwrap();
    assert_eq!(
        header(&ckpt.join("model.safetensors")).0["trunk.conv1.bias"],
        [1, 32, 1, 1]
    );

    assert_eq!(test_error(&dir), before);
    let d = dir.to_str().unwrap();
    ok(&[
        "train",
        "--resume",
        d,
        "--epochs",
        "2",
        "--data-dir",
        &data_dir(),
    ]);
    let resumed = dir.join("epoch-0002");
    assert_eq!(read_json(&resumed.join("config.json"))["format"], 2);
    assert_eq!(
        header(&resumed.join("model.safetensors")).0["trunk.conv1.bias"],
        [32]
    );
    assert_eq!(
        header(&resumed.join("optimizer.safetensors")).0["m/trunk.conv1.bias"],
        [32]
    );
}

#[test]
fn every_kind_describes_its_likelihood_activation_and_alpha() {
    let tt = data::load(DatasetName::Digits, Path::new(&data_dir())).unwrap();
    let split = data::split(&tt.train.y, tt.train.classes, 50, 0, 0).unwrap();
    let per_label = 0.1 * tt.train.n as f32 / 50.0;
    for (kind, alpha, likelihood, upper) in [
        (ModelKind::Vae, None, Some("bernoulli"), None),
        (ModelKind::M1, Some(1.0), Some("bernoulli"), None),
        (ModelKind::M2, Some(per_label), Some("bernoulli"), None),
        (
            ModelKind::M1M2,
            Some(per_label),
            Some("bernoulli"),
            Some("softplus"),
        ),
        (ModelKind::Gmvae, Some(per_label), Some("bernoulli"), None),
        (ModelKind::Shot, Some(1.0), Some("bernoulli"), None),
        (ModelKind::Sparse, Some(per_label), Some("bernoulli"), None),
        (ModelKind::Aae, Some(per_label), Some("bernoulli"), None),
        (ModelKind::Ladder, Some(per_label), Some("bernoulli"), None),
        (ModelKind::Adgm, Some(per_label), Some("bernoulli"), None),
        (ModelKind::Sdgm, Some(per_label), Some("bernoulli"), None),
        (ModelKind::Classifier, None, None, None),
    ] {
        let spec = ModelSpec {
            hidden: 16,
            z_dim: 4,
            ..ModelSpec::new(kind, Arch::Mlp, &tt.train, &split)
        };
        assert_eq!(spec.input, (1, 8, 8));
        assert_eq!((spec.n_train, spec.n_labelled), (tt.train.n, 50));
        let model = models::build(&spec, &mut Rng::new(0, 0), Device::Cpu).unwrap();
        let d = models::describe(&spec, model.as_ref());
        assert_eq!(d.alpha, alpha, "{kind}");
        assert_eq!(d.likelihood, likelihood, "{kind}");
        assert_eq!(
            (d.activation, d.upper_activation),
            ("relu", upper),
            "{kind}"
        );
        // A given α is the one used.
        let given = ModelSpec {
            alpha: Some(0.5),
            ..spec.clone()
        };
        assert_eq!(given.effective_alpha(), alpha.map(|_| 0.5), "{kind}");
    }
    // The unsupervised GMVAE has no labelled cross-entropy to weigh.
    let none = data::split(&tt.train.y, tt.train.classes, 0, 0, 0).unwrap();
    let gmvae = ModelSpec::new(ModelKind::Gmvae, Arch::Mlp, &tt.train, &none);
    assert_eq!(gmvae.effective_alpha(), None);
    // m1m2 weighs its labelled bound N_labelled/N_unlabelled by default (the paper's
    // objective), the others leave it to the model (1).
    let m1m2 = ModelSpec::new(ModelKind::M1M2, Arch::Conv, &tt.train, &split);
    assert_eq!(m1m2.labelled_bound_weight, Some(50.0 / tt.train.n as f32));
    assert_eq!(m1m2.z_dim, models::arch::default_z_dim(Arch::Conv));
    assert_eq!(
        ModelSpec::new(ModelKind::M2, Arch::Mlp, &tt.train, &split).labelled_bound_weight,
        None
    );
}
