//! Checkpoints: save → load round trips (tensors, predictions, optimiser state), exact resume
//! (bit for bit: a 2-epoch run interrupted after epoch 1 and resumed = the straight run, for M2
//! and for M1+M2 with its running z1 activity; a run stopped part-way through an epoch by
//! `Observer::stop_requested`, saved as a mid-epoch checkpoint and resumed = the straight run,
//! for M2, M1+M2, SHOT-VAE and the GMVAE; the same for ADGM and SDGM, whose loaded checkpoint
//! also evaluates to the trained model's figures; 1 epoch + `--resume` to 2 through the `ssvae`
//! binary, also with shifted training images and with a learning-rate milestone added on
//! resume), M1+M2's M1 freeze (also added on resume), the step schedule of the learning rate,
//! a NaN that stops training while the last good checkpoint stays intact and loadable, and
//! clear errors for mismatched or mixed checkpoint files. Small models on the shared digits
//! set.

use ssvae::data::{self, SemiSupervised, TrainTest};
use ssvae::models::{self, Arch, Model, ModelKind, ModelSpec};
use ssvae::rng::Rng;
use ssvae::storage::Storage;
use ssvae::train::checkpoint::{self, RunConfig};
use ssvae::train::{
    evaluate_all, fit_with, EpochReport, Observer, StepInfo, TrainConfig, TrainState, INIT_STREAM,
};
use ssvae::{nn, Device, Error};
use std::path::{Path, PathBuf};

mod cli_support;

use cli_support::{data_dir, fails, ok, temp_dir, train_args};

struct Setup {
    tt: TrainTest,
    split: SemiSupervised,
    rc: RunConfig,
}

fn setup(epochs: usize) -> Setup {
    let tt = data::load(data::DatasetName::Digits, Path::new(&data_dir())).unwrap();
    let (labels, seed) = (50, 3);
    let split = data::split(&tt.train.y, tt.train.classes, labels, 0, seed).unwrap();
    let spec = ModelSpec {
        kind: ModelKind::M2,
        arch: Arch::Mlp,
        input: (1, 8, 8),
        classes: 10,
        hidden: 32,
        z_dim: 4,
        alpha: None,
        n_train: tt.train.n,
        n_labelled: split.labelled.len(),
        fused: true,
        freeze_m1_after: None,
        align: false,
        drop_inactive_z1: false,
        labelled_bound_weight: None,
        a_samples: None,
    };
    let train = TrainConfig {
        epochs,
        batch_size: 64,
        labelled_batch: 25,
        lr: 1e-3,
        lr_milestones: Vec::new(),
        lr_gamma: 0.1,
        seed,
        device: Device::Cpu,
        eval_batch: 200,
        steps_per_epoch: None,
        use_unlabelled: true,
        augment_shift: 0,
        binarize: false,
    };
    let rc = RunConfig {
        format: checkpoint::FORMAT_VERSION,
        model: spec,
        dataset: "digits".into(),
        labels,
        validation: 0,
        seed,
        train,
        epoch: 0,
        step: 0,
        m1_from: None,
        steps_into_epoch: 0,
        retention: Default::default(),
    };
    Setup { tt, split, rc }
}

fn build(rc: &RunConfig) -> Box<dyn Model> {
    models::build(&rc.model, &mut Rng::new(rc.seed, INIT_STREAM), Device::Cpu).unwrap()
}

fn values(model: &dyn Model) -> Vec<(String, Vec<u32>)> {
    nn::state(model, "")
        .into_iter()
        .map(|(n, t)| (n, t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

/// What a [`Saver`] does right after the save of one epoch.
#[derive(Clone, Copy)]
enum AfterSave {
    /// Poisons a parameter with NaN (the next epoch must fail).
    Poison(usize),
    /// Stops training with an error, as an interrupted run.
    Interrupt(usize),
}

/// Saves a checkpoint after every epoch, then does what `after` says.
struct Saver<'a> {
    dir: &'a Path,
    rc: RunConfig,
    model: &'a dyn Model,
    after: Option<AfterSave>,
    snapshot: Vec<(String, Vec<u32>)>,
    reports: Vec<EpochReport>,
}

impl Observer for Saver<'_> {
    fn on_epoch(&mut self, r: &EpochReport, state: &TrainState) -> ssvae::Result<()> {
        checkpoint::save(self.dir, &self.rc, self.model, state)?;
        self.snapshot = values(self.model);
        self.reports.push(r.clone());
        match self.after {
            Some(AfterSave::Poison(e)) if e == r.epoch => {
                let (_, t) = nn::state(self.model, "")
                    .into_iter()
                    .find(|(n, _)| n == "dec_out.bias")
                    .unwrap();
                let nan = Storage::from_slice(&vec![f32::NAN; t.elem_count()], Device::Cpu)?;
                *t.storage_mut() = nan;
            }
            Some(AfterSave::Interrupt(e)) if e == r.epoch => {
                return Err(Error::msg(format!("interrupted after epoch {e}")));
            }
            _ => {}
        }
        Ok(())
    }
}

fn train(s: &Setup, dir: &Path, after: Option<AfterSave>) -> (Saver<'static>, ssvae::Result<()>) {
    // Leak the model for the 'static observer borrow; tests only.
    let model: &'static dyn Model = Box::leak(build(&s.rc));
    let dir: &'static Path = Box::leak(dir.to_path_buf().into_boxed_path());
    let mut state = TrainState::new(model, &s.split, &s.rc.train).unwrap();
    let mut saver = Saver {
        dir,
        rc: s.rc.clone(),
        model,
        after,
        snapshot: Vec::new(),
        reports: Vec::new(),
    };
    let r = fit_with(
        model,
        &s.tt.train,
        &s.tt.test,
        &s.split,
        &s.rc.train,
        &mut state,
        &mut saver,
    )
    .map(|_| ());
    (saver, r)
}

#[test]
fn round_trip_gives_identical_tensors_predictions_and_optimiser() {
    let s = setup(1);
    let dir = temp_dir("roundtrip");
    let (saver, r) = train(&s, &dir, None);
    r.unwrap();
    let model = saver.model;
    assert_eq!(
        std::fs::read_to_string(dir.join("LATEST")).unwrap().trim(),
        "epoch-0001"
    );

    let (ckpt, rc, loaded) = checkpoint::load_model(&dir, Device::Cpu).unwrap();
    assert_eq!(ckpt, dir.join("epoch-0001"));
    assert_eq!(rc.model, s.rc.model);
    assert_eq!(rc.train, s.rc.train);
    assert_eq!((rc.epoch, rc.step), (1, 22));
    assert_eq!(values(loaded.as_ref()), values(model));

    let (x, _) =
        ssvae::train::batch_tensor(&s.tt.test, &(0..100).collect::<Vec<_>>(), Device::Cpu).unwrap();
    let _g = ssvae::no_grad();
    let a = model.classify(&x).unwrap().to_vec().unwrap();
    let b = loaded.classify(&x).unwrap().to_vec().unwrap();
    assert_eq!(
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    drop(_g);

    // The optimiser state and positions come back too.
    let state = checkpoint::load_train_state(&ckpt, loaded.as_ref(), &s.split, &rc.train).unwrap();
    assert_eq!((state.epoch, state.step, state.opt.t), (1, 22, 22));
    let nonzero = state
        .opt
        .moments()
        .iter()
        .any(|(m, _)| m.to_vec().unwrap().iter().any(|&v| v != 0.0));
    assert!(nonzero, "restored Adam moments are all zero");
}

/// Library level: 2 epochs straight vs a run of 2 interrupted after epoch 1, then a state
/// restored from disk, 1 more: the same numbers, tensors and checkpoint files to the bit.
fn resume_continues_exactly(s2: Setup, name: &str) {
    let (a_dir, b_dir) = (
        temp_dir(&format!("{name}-a")),
        temp_dir(&format!("{name}-b")),
    );
    let (a, r) = train(&s2, &a_dir, None);
    r.unwrap();
    let (b, r) = train(&s2, &b_dir, Some(AfterSave::Interrupt(1)));
    assert!(r.unwrap_err().to_string().contains("interrupted"));

    let (ckpt, rc, model) = checkpoint::load_model(&b_dir, Device::Cpu).unwrap();
    assert_eq!(rc.epoch, 1);
    let mut state =
        checkpoint::load_train_state(&ckpt, model.as_ref(), &s2.split, &rc.train).unwrap();
    let mut saver = Saver {
        dir: &b_dir,
        rc: rc.clone(),
        model: model.as_ref(),
        after: None,
        snapshot: Vec::new(),
        reports: Vec::new(),
    };
    fit_with(
        model.as_ref(),
        &s2.tt.train,
        &s2.tt.test,
        &s2.split,
        &rc.train,
        &mut state,
        &mut saver,
    )
    .unwrap();
    let bits = |r: &EpochReport| -> Vec<u64> {
        let mut v: Vec<u64> = r.train.iter().map(|(_, x)| x.to_bits()).collect();
        v.push(r.test_error.to_bits());
        v.push(r.test_neg_elbo.unwrap().to_bits());
        v
    };
    assert_eq!(bits(&a.reports[0]), bits(&b.reports[0]));
    assert_eq!(bits(&a.reports[1]), bits(&saver.reports[0]));
    assert_eq!(values(a.model), values(model.as_ref()));
    for f in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        let x = std::fs::read(a_dir.join("epoch-0002").join(f)).unwrap();
        let y = std::fs::read(b_dir.join("epoch-0002").join(f)).unwrap();
        assert!(
            x == y,
            "{f} differs between the straight and the resumed run"
        );
    }
}

#[test]
fn resume_continues_exactly_for_m2() {
    resume_continues_exactly(setup(2), "resume");
}

#[test]
fn adgm_and_sdgm_round_trip_to_identical_evaluations_and_resume_exactly() {
    for kind in [ModelKind::Adgm, ModelKind::Sdgm] {
        let mut s = setup(1);
        s.rc.model.kind = kind;
        let dir = temp_dir(&format!("roundtrip-{kind}"));
        let (saver, r) = train(&s, &dir, None);
        r.unwrap();
        let (_, rc, loaded) = checkpoint::load_model(&dir, Device::Cpu).unwrap();
        assert_eq!(rc.model, s.rc.model);
        assert_eq!(values(loaded.as_ref()), values(saver.model));
        // Test error, −ELBO, ACC and NMI: the same numbers from the trained and the loaded model.
        let trained = evaluate_all(saver.model, &s.tt.test, &s.rc.train).unwrap();
        let restored = evaluate_all(loaded.as_ref(), &s.tt.test, &s.rc.train).unwrap();
        println!(
            "{kind}: error {:?}, -ELBO {:?}",
            trained.error, trained.neg_elbo
        );
        assert_eq!(trained, restored, "{kind}");
        assert!(trained.error.unwrap() < 0.9, "{kind}: {trained:?}");
        assert!(trained.neg_elbo.unwrap().is_finite(), "{kind}: {trained:?}");

        let mut s2 = setup(2);
        s2.rc.model.kind = kind;
        resume_continues_exactly(s2, &format!("resume-{kind}"));
    }
}

#[test]
fn m1m2_modelling_only_active_units_resumes_exactly_with_its_running_activity() {
    // M1+M2's schedule is a fraction of the run, and its running activity of z1 is state.
    let mut s = setup(2);
    s.rc.model.kind = ModelKind::M1M2;
    s.rc.model.drop_inactive_z1 = true;
    let model = build(&s.rc);
    assert!(values(model.as_ref())
        .iter()
        .any(|(n, _)| n == "z1_activity"));
    resume_continues_exactly(s, "resume-active-z1");
}

/// A [`Saver`] that asks training to stop once `stop_after` steps are done.
struct StopAfter<'a> {
    saver: Saver<'a>,
    stop_after: usize,
    step: usize,
}

impl Observer for StopAfter<'_> {
    fn on_step(&mut self, info: &StepInfo) {
        self.step = info.step;
    }
    fn on_epoch(&mut self, r: &EpochReport, state: &TrainState) -> ssvae::Result<()> {
        self.saver.on_epoch(r, state)
    }
    fn stop_requested(&mut self) -> bool {
        self.step >= self.stop_after
    }
}

/// A copy of mid-epoch checkpoint `ckpt` whose state.json claims another position in the epoch
/// than its config.json, or more steps than the epoch has, is refused, naming state.json.
fn mid_epoch_positions_are_checked(ckpt: &Path, model: &dyn Model, s: &Setup) {
    let bad = temp_dir("mid-epoch-bad");
    for f in [
        "model.safetensors",
        "optimizer.safetensors",
        "config.json",
        "state.json",
    ] {
        std::fs::copy(ckpt.join(f), bad.join(f)).unwrap();
    }
    let state = std::fs::read_to_string(ckpt.join("state.json")).unwrap();
    let config = std::fs::read_to_string(ckpt.join("config.json")).unwrap();
    assert!(state.contains("\"steps_done\":8,"), "{state}");
    let load = || checkpoint::load_train_state(&bad, model, &s.split, &s.rc.train);
    std::fs::write(
        bad.join("state.json"),
        state.replace("\"steps_done\":8,", "\"steps_done\":9,"),
    )
    .unwrap();
    let err = load().err().unwrap().to_string();
    assert!(
        err.contains("state.json") && err.contains("files of different saves"),
        "{err}"
    );
    std::fs::write(
        bad.join("state.json"),
        state.replace("\"steps_done\":8,", "\"steps_done\":99,"),
    )
    .unwrap();
    std::fs::write(
        bad.join("config.json"),
        config.replace("\"steps_into_epoch\": 8", "\"steps_into_epoch\": 99"),
    )
    .unwrap();
    let err = load().err().unwrap().to_string();
    assert!(
        err.contains("stopped after 99 of its 22 steps cannot be resumed"),
        "{err}"
    );
}

/// Library level: 2 epochs straight vs a run stopped after step 30 (8 steps into epoch 2 of 22
/// steps each), saved as a mid-epoch checkpoint, restored from disk and finished: the same
/// epoch figures, tensors and checkpoint files to the bit.
#[test]
fn a_run_stopped_mid_epoch_resumes_exactly_for_every_kind_of_schedule() {
    for (kind, name) in [
        (ModelKind::M2, "m2"),
        (ModelKind::M1M2, "m1m2"),
        (ModelKind::Shot, "shot"),
        (ModelKind::Gmvae, "gmvae"),
        (ModelKind::Sparse, "sparse"),
        (ModelKind::Aae, "aae"),
        (ModelKind::Ladder, "ladder"),
    ] {
        let mut s = setup(2);
        s.rc.model.kind = kind;
        s.rc.model.drop_inactive_z1 = kind == ModelKind::M1M2;
        let (a_dir, b_dir) = (
            temp_dir(&format!("mid-epoch-{name}-a")),
            temp_dir(&format!("mid-epoch-{name}-b")),
        );
        let (a, r) = train(&s, &a_dir, None);
        r.unwrap();

        let model = build(&s.rc);
        let mut state = TrainState::new(model.as_ref(), &s.split, &s.rc.train).unwrap();
        let saver = Saver {
            dir: &b_dir,
            rc: s.rc.clone(),
            model: model.as_ref(),
            after: None,
            snapshot: Vec::new(),
            reports: Vec::new(),
        };
        let mut stopper = StopAfter {
            saver,
            stop_after: 30,
            step: 0,
        };
        let reports = fit_with(
            model.as_ref(),
            &s.tt.train,
            &s.tt.test,
            &s.split,
            &s.rc.train,
            &mut state,
            &mut stopper,
        )
        .unwrap();
        assert_eq!(reports.len(), 1, "{name}: stopped in epoch 2");
        assert_eq!((state.epoch, state.step), (1, 30), "{name}");
        let partial = state.partial.clone().expect("stopped part-way");
        assert_eq!(partial.steps_done, 8, "{name}");
        let ckpt = checkpoint::save(&b_dir, &s.rc, model.as_ref(), &state).unwrap();
        assert_eq!(ckpt, b_dir.join("step-00000030"));
        drop(model);

        let (ckpt, rc, model) = checkpoint::load_model(&b_dir, Device::Cpu).unwrap();
        assert_eq!(ckpt, b_dir.join("step-00000030"));
        assert_eq!((rc.epoch, rc.step, rc.steps_into_epoch), (1, 30, 8));
        let mut state =
            checkpoint::load_train_state(&ckpt, model.as_ref(), &s.split, &rc.train).unwrap();
        assert_eq!(state.partial.as_ref(), Some(&partial), "{name}");
        if kind == ModelKind::M2 {
            mid_epoch_positions_are_checked(&ckpt, model.as_ref(), &s);
        }
        let mut saver = Saver {
            dir: &b_dir,
            rc: rc.clone(),
            model: model.as_ref(),
            after: None,
            snapshot: Vec::new(),
            reports: Vec::new(),
        };
        fit_with(
            model.as_ref(),
            &s.tt.train,
            &s.tt.test,
            &s.split,
            &rc.train,
            &mut state,
            &mut saver,
        )
        .unwrap();
        let bits = |r: &EpochReport| -> Vec<u64> {
            let mut v: Vec<u64> = r.train.iter().map(|(_, x)| x.to_bits()).collect();
            v.push(r.test_error.to_bits());
            v.extend(r.test_neg_elbo.map(f64::to_bits));
            v
        };
        assert_eq!(saver.reports.len(), 1, "{name}");
        assert_eq!(bits(&a.reports[1]), bits(&saver.reports[0]), "{name}");
        assert_eq!(values(a.model), values(model.as_ref()), "{name}");
        for f in ["model.safetensors", "optimizer.safetensors", "state.json"] {
            let x = std::fs::read(a_dir.join("epoch-0002").join(f)).unwrap();
            let y = std::fs::read(b_dir.join("epoch-0002").join(f)).unwrap();
            assert!(x == y, "{name}: {f} differs");
        }
        // The mid-epoch checkpoint is superseded by the epoch's.
        assert!(!b_dir.join("step-00000030").exists(), "{name}");
    }
}

/// metrics.csv without the timing columns (unix_time, wall_s, examples_per_s).
fn csv_without_timing(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            let mut keep = vec![c[0]];
            keep.extend(&c[4..]);
            keep.join(",")
        })
        .collect()
}

/// `train` on digits with a small M2 and seed 7 into `out`, plus `extra` flags.
fn digits_run<'a>(dd: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut more = vec!["--seed", "7"];
    more.extend(extra);
    train_args(dd, out.to_str().unwrap(), &more)
}

/// Two digits runs with `extra` flags, 2 epochs straight and 1 epoch + `--resume` to 2: the
/// metrics (all but the timings) and every tensor agree to the bit. Returns the metrics and
/// the resumed run's directory.
fn resume_matches_a_straight_run(name: &str, extra: &[&str]) -> (Vec<String>, PathBuf) {
    let dd = data_dir();
    let dd = dd.as_str();
    let (a, b) = (
        temp_dir(&format!("{name}-a")),
        temp_dir(&format!("{name}-b")),
    );
    let with = |epochs: &'static str| [&["--epochs", epochs][..], extra].concat();
    ok(&digits_run(dd, &a, &with("2")));
    ok(&digits_run(dd, &b, &with("1")));
    let out = ok(&[
        "train",
        "--resume",
        b.to_str().unwrap(),
        "--epochs",
        "2",
        "--data-dir",
        dd,
    ]);
    assert!(out.contains("resuming "), "{out}");

    let (ca, cb) = (
        csv_without_timing(&a.join("metrics.csv")),
        csv_without_timing(&b.join("metrics.csv")),
    );
    assert_eq!(ca.len(), 3, "{ca:?}");
    assert_eq!(ca, cb);
    let (_, _, ma) = checkpoint::load_model(&a, Device::Cpu).unwrap();
    let (_, _, mb) = checkpoint::load_model(&b, Device::Cpu).unwrap();
    assert_eq!(values(ma.as_ref()), values(mb.as_ref()));
    (ca, b)
}

#[test]
fn resume_through_the_cli_matches_a_straight_run_bit_for_bit_also_with_augmented_images() {
    let (plain, _) = resume_matches_a_straight_run("cli-resume", &[]);
    let (shifted, shift_dir) =
        resume_matches_a_straight_run("cli-resume-shift", &["--augment-shift", "1"]);
    let (binary, binary_dir) =
        resume_matches_a_straight_run("cli-resume-binarize", &["--binarize"]);
    for (what, augmented) in [("shifted", &shifted), ("binarised", &binary)] {
        assert_eq!(plain[0], augmented[0], "the same columns");
        for epoch in 1..=2 {
            assert_ne!(
                plain[epoch], augmented[epoch],
                "epoch {epoch}: {what} batches train differently"
            );
        }
    }
    // The augmentations are part of the run's saved settings.
    let saved = |dir: &Path| checkpoint::load_config(&checkpoint::resolve(dir).unwrap()).unwrap();
    let (s, b) = (saved(&shift_dir), saved(&binary_dir));
    assert_eq!((s.train.augment_shift, s.train.binarize), (1, false));
    assert_eq!((b.train.augment_shift, b.train.binarize), (0, true));
}

#[test]
fn lr_schedule_steps_like_multistep_lr() {
    let mut c = setup(1).rc.train;
    c.lr_milestones = vec![2, 4];
    c.lr_gamma = 0.5;
    let rates: Vec<f32> = (1..=6).map(|e| c.lr_at(e)).collect();
    assert_eq!(rates, [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4]);
    c.check_lr_schedule().unwrap();
    for (m, g) in [(vec![0], 0.5), (vec![3, 3], 0.5), (vec![4, 2], 0.5)] {
        c.lr_milestones = m;
        c.lr_gamma = g;
        let err = c.check_lr_schedule().unwrap_err().to_string();
        assert!(err.contains("--lr-milestones"), "{err}");
    }
    c.lr_milestones = vec![1];
    for g in [0.0, -1.0, f32::NAN] {
        c.lr_gamma = g;
        let err = c.check_lr_schedule().unwrap_err().to_string();
        assert!(err.contains("--lr-gamma"), "{err}");
    }

    // Rescheduling a run that has trained 3 epochs: allowed where epochs 1–3 keep their rate.
    let mut c = setup(1).rc.train;
    c.reschedule(Some(vec![3]), None, 3).unwrap();
    c.reschedule(None, Some(0.5), 3).unwrap();
    assert_eq!((c.lr_at(3), c.lr_at(4)), (1e-3, 5e-4));
    let before = c.clone();
    let err = c
        .reschedule(Some(vec![2]), None, 3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("changes epoch 3, already trained"), "{err}");
    let err = c.reschedule(None, Some(0.2), 4).unwrap_err().to_string();
    assert!(err.contains("changes epoch 4"), "{err}");
    let err = c
        .reschedule(Some(vec![5, 4]), None, 3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--lr-milestones"), "{err}");
    assert_eq!(c, before, "a refused schedule leaves the config alone");
}

#[test]
fn the_optimiser_trains_each_epoch_at_the_scheduled_rate() {
    let mut s = setup(2);
    s.rc.train.lr_milestones = vec![1];
    let model = build(&s.rc);
    let mut state = TrainState::new(model.as_ref(), &s.split, &s.rc.train).unwrap();
    let mut rates = Vec::new();
    struct Rates<'a>(&'a mut Vec<(f32, f32)>);
    impl Observer for Rates<'_> {
        fn on_epoch(&mut self, r: &EpochReport, st: &TrainState) -> ssvae::Result<()> {
            self.0.push((r.lr, st.opt.config.lr));
            Ok(())
        }
    }
    fit_with(
        model.as_ref(),
        &s.tt.train,
        &s.tt.test,
        &s.split,
        &s.rc.train,
        &mut state,
        &mut Rates(&mut rates),
    )
    .unwrap();
    let decayed = 1e-3f32 * 0.1;
    assert_eq!(rates, [(1e-3, 1e-3), (decayed, decayed)]);
}

#[test]
fn a_milestone_added_on_resume_matches_a_straight_run_with_it() {
    // A: 3 epochs, the rate ×0.1 after epoch 2. B: 2 epochs at a constant rate, resumed to 3
    // with that milestone added; epochs 1–2 trained at the same rate, so B must equal A.
    let dd = data_dir();
    let dd = dd.as_str();
    let (a, b) = (temp_dir("cli-milestone-a"), temp_dir("cli-milestone-b"));
    let out_a = ok(&digits_run(
        dd,
        &a,
        &["--epochs", "3", "--lr-milestones", "2"],
    ));
    assert!(out_a.contains("lr 1.000e-4"), "{out_a}");
    ok(&digits_run(dd, &b, &["--epochs", "2"]));
    let bs = b.to_str().unwrap();
    let resume = |milestone: &'static str| {
        vec![
            "train",
            "--resume",
            bs,
            "--data-dir",
            dd,
            "--epochs",
            "3",
            "--lr-milestones",
            milestone,
        ]
    };
    // A milestone inside the trained epochs would change their rate: refused, B untouched.
    let err = fails(&resume("1"));
    assert!(err.contains("changes epoch 2, already trained"), "{err}");
    assert_eq!(
        std::fs::read_to_string(b.join("LATEST")).unwrap().trim(),
        "epoch-0002"
    );
    ok(&resume("2"));

    assert_eq!(
        csv_without_timing(&a.join("metrics.csv")),
        csv_without_timing(&b.join("metrics.csv"))
    );
    let (_, rc, mb) = checkpoint::load_model(&b, Device::Cpu).unwrap();
    assert_eq!(rc.train.lr_milestones, [2], "the schedule is saved");
    let (_, _, ma) = checkpoint::load_model(&a, Device::Cpu).unwrap();
    assert_eq!(values(ma.as_ref()), values(mb.as_ref()));
}

#[test]
fn freezing_m1_stops_m1_from_that_epoch_on_also_when_added_on_resume() {
    let dd = data_dir();
    let dd = dd.as_str();
    let csv_rows = |dir: &Path| -> Vec<Vec<String>> {
        let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        csv.lines()
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect()
    };
    // M1's terms (not computed while it is frozen) read 0 in the frozen epochs only.
    let m1_terms_zero = |rows: &[Vec<String>]| -> Vec<bool> {
        let col = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
        rows[1..]
            .iter()
            .map(|r| r[col("rec")] == "0" && r[col("kl")] == "0")
            .collect()
    };
    // Straight 3-epoch M1+M2 runs, one with M1 frozen after epoch 2: epochs 1–2 are the same
    // to the bit (timing aside), epoch 3 differs.
    let (a, b) = (temp_dir("cli-freeze-a"), temp_dir("cli-freeze-b"));
    let three = ["--model", "m1m2", "--epochs", "3"];
    let mut frozen = three.to_vec();
    frozen.extend(["--freeze-m1-after", "2"]);
    ok(&digits_run(dd, &a, &frozen));
    ok(&digits_run(dd, &b, &three));
    let (ca, cb) = (
        csv_without_timing(&a.join("metrics.csv")),
        csv_without_timing(&b.join("metrics.csv")),
    );
    assert_eq!(ca[..3], cb[..3]);
    assert_ne!(ca[3], cb[3]);
    assert_eq!(m1_terms_zero(&csv_rows(&a)), [false, false, true]);
    assert_eq!(m1_terms_zero(&csv_rows(&b)), [false, false, false]);

    // A 2-epoch run resumed to 4 with M1 frozen after epoch 2, then to 5 (the freeze is saved):
    // every M1 tensor keeps its epoch-2 value, every upper-M2 tensor trains.
    let c = temp_dir("cli-freeze-c");
    ok(&digits_run(dd, &c, &["--model", "m1m2", "--epochs", "2"]));
    let (_, _, at_2) = checkpoint::load_model(&c, Device::Cpu).unwrap();
    let at_2 = values(at_2.as_ref());
    let cs = c.to_str().unwrap();
    let resume = |epochs: &'static str, after: Option<&'static str>| {
        let mut v = vec![
            "train",
            "--resume",
            cs,
            "--data-dir",
            dd,
            "--epochs",
            epochs,
        ];
        if let Some(e) = after {
            v.extend(["--freeze-m1-after", e]);
        }
        v
    };
    // Freezing after epoch 1 would change epoch 2, already trained: refused, C untouched.
    let err = fails(&resume("4", Some("1")));
    assert!(
        err.contains("--freeze-m1-after") && err.contains("after epoch 2 or later"),
        "{err}"
    );
    assert_eq!(
        checkpoint::load_config(&checkpoint::resolve(&c).unwrap())
            .unwrap()
            .epoch,
        2
    );
    ok(&resume("4", Some("2")));
    ok(&resume("5", None));
    let (_, rc, model) = checkpoint::load_model(&c, Device::Cpu).unwrap();
    assert_eq!((rc.epoch, rc.model.freeze_m1_after), (5, Some(2)));
    for ((name, v2), (_, v5)) in at_2.iter().zip(&values(model.as_ref())) {
        if name.starts_with("m1.") {
            assert_eq!(v2, v5, "{name} moved while M1 was frozen");
        } else {
            assert_ne!(v2, v5, "{name} did not train");
        }
    }
    assert_eq!(
        m1_terms_zero(&csv_rows(&c)),
        [false, false, true, true, true]
    );
}

#[test]
fn freezing_m1_is_refused_for_other_models() {
    let dd = data_dir();
    let dd = dd.as_str();
    let dir = temp_dir("cli-freeze-m2");
    let err = fails(&digits_run(dd, &dir, &["--freeze-m1-after", "1"]));
    assert!(
        err.contains("--freeze-m1-after: applies to m1m2 only, not to m2"),
        "{err}"
    );
    assert!(!checkpoint::exists(&dir));

    // And on resume, for a model other than m1m2; the spec is left alone.
    let mut spec = setup(1).rc.model;
    let err = spec.freeze_m1_from(5, 0).unwrap_err().to_string();
    assert!(err.contains("applies to m1m2 only"), "{err}");
    assert_eq!(spec.freeze_m1_after, None);
    // An m1m2 frozen after epoch 4 that has trained 3 epochs: moving the freeze later than 3 is
    // allowed, earlier is not, and a run past the freeze cannot move it.
    spec.kind = ModelKind::M1M2;
    spec.freeze_m1_from(4, 3).unwrap();
    spec.freeze_m1_from(3, 3).unwrap();
    spec.freeze_m1_from(10, 3).unwrap();
    assert!(spec.freeze_m1_from(2, 3).is_err());
    assert_eq!(spec.freeze_m1_after, Some(10));
    let err = spec.freeze_m1_from(20, 11).unwrap_err().to_string();
    assert!(err.contains("M1 frozen after epoch 10"), "{err}");
}

#[test]
fn nan_stops_training_and_the_last_checkpoint_survives() {
    let s = setup(3);
    let dir = temp_dir("nan");
    let (saver, r) = train(&s, &dir, Some(AfterSave::Poison(1)));
    let msg = match r {
        Err(Error::NonFinite { what }) => what,
        other => panic!("expected a NonFinite error, got {:?}", other.err()),
    };
    // 1397 unlabelled examples in batches of 64: 22 steps per epoch, so the first step of
    // epoch 2 is step 23.
    assert!(msg.contains("at step 23 (epoch 2)"), "{msg}");
    assert!(msg.contains("'labelled'"), "{msg}");

    // The checkpoint of epoch 1 is still the latest, loads, and holds the good weights.
    assert_eq!(
        std::fs::read_to_string(dir.join("LATEST")).unwrap().trim(),
        "epoch-0001"
    );
    let (_, rc, loaded) = checkpoint::load_model(&dir, Device::Cpu).unwrap();
    assert_eq!(rc.epoch, 1);
    assert_eq!(values(loaded.as_ref()), saver.snapshot);

    // Saving the poisoned model is refused and leaves the checkpoint alone.
    let state = TrainState::new(saver.model, &s.split, &s.rc.train).unwrap();
    let err = checkpoint::save(&dir, &s.rc, saver.model, &state).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    assert!(err.to_string().contains("dec_out.bias"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("LATEST")).unwrap().trim(),
        "epoch-0001"
    );
    checkpoint::load_model(&dir, Device::Cpu).unwrap();
}

#[test]
fn mismatched_and_mixed_checkpoints_are_clear_errors() {
    let s = setup(1);
    let dir = temp_dir("mismatch");
    let (_, r) = train(&s, &dir, None);
    r.unwrap();
    let ckpt = dir.join("epoch-0001");
    let config = std::fs::read_to_string(ckpt.join("config.json")).unwrap();

    // A spec with another hidden size: the first tensor of another shape is named.
    std::fs::write(
        ckpt.join("config.json"),
        config.replace("\"hidden\": 32", "\"hidden\": 16"),
    )
    .unwrap();
    let err = checkpoint::load_model(&dir, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");
    assert!(
        err.contains("has shape [32, 64] but the model's is [16, 64]"),
        "{err}"
    );

    // A config of another save (epoch/step differ from the stamp in the tensor files).
    std::fs::write(
        ckpt.join("config.json"),
        config.replace("\"step\": 22", "\"step\": 21"),
    )
    .unwrap();
    let err = checkpoint::load_model(&dir, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("different saves"), "{err}");

    // A truncated optimizer file.
    std::fs::write(ckpt.join("config.json"), &config).unwrap();
    let opt = std::fs::read(ckpt.join("optimizer.safetensors")).unwrap();
    std::fs::write(ckpt.join("optimizer.safetensors"), &opt[..opt.len() / 2]).unwrap();
    let (ckpt2, rc, model) = checkpoint::load_model(&dir, Device::Cpu).unwrap();
    let err = checkpoint::load_train_state(&ckpt2, model.as_ref(), &s.split, &rc.train)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("optimizer.safetensors"), "{err}");
    assert!(err.contains("corrupt or truncated"), "{err}");

    // A checkpoint of another split does not resume.
    std::fs::write(ckpt.join("optimizer.safetensors"), &opt).unwrap();
    let other = data::split(&s.tt.train.y, 10, 100, 0, 3).unwrap();
    let err = checkpoint::load_train_state(&ckpt2, model.as_ref(), &other, &rc.train)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("state.json") && err.contains("labelled batcher"),
        "{err}"
    );
}
