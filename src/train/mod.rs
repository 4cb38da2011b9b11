//! Training: the loop, its schedule, validation, and checkpoints that make a
//! run resumable across processes (and sessions).
//!
//! A run writes, next to `--out FILE.safetensors`:
//! - `FILE.safetensors`: the best weights so far (by validation PSNR), a
//!   model file with its training record;
//! - `FILE.ckpt.safetensors`: the latest checkpoint — weights, Adam moments,
//!   the weight average if one is kept, step, loss accumulator, best score,
//!   wall time. The data sampler's state is the step itself
//!   ([`data::PatchSampler`]), so nothing else is needed;
//! - `FILE.log.csv`: one row per validation (step, learning rate, mean
//!   training loss since the previous row, validation PSNR/SSIM, time);
//! - `FILE.curve.png`: loss and validation PSNR against step.
//!
//! Every file is written atomically (temporary file, then rename), best
//! weights before the checkpoint, so a run killed at any moment (SIGKILL
//! included) resumes from its last checkpoint and replays exactly the same
//! batches.

pub mod data;
mod plot;
pub mod revive;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::eval::{self, Dataset, EvalOptions};
use crate::infer::ModelUpscaler;
use crate::models::{Model, TrainingRecord};
use crate::nn::{
    tensor_from_view, Adam, AdamConfig, AdamState, Graph, ParamStore, Tensor, WeightAverage,
};

use data::PatchSampler;

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Loss {
    /// Mean squared error (the SRCNN paper's).
    Mse,
    /// Mean absolute error.
    L1,
}

impl std::str::FromStr for Loss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mse" | "l2" => Ok(Loss::Mse),
            "l1" | "mae" => Ok(Loss::L1),
            _ => Err(Error::invalid(
                "loss",
                format!("'{s}' (expected mse or l1)"),
            )),
        }
    }
}

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Architecture name.
    pub arch: String,
    /// Architecture config (JSON).
    pub arch_config: serde_json::Value,
    /// Upscaling factors. Several only for networks fed the bicubic-upscaled
    /// image (SRCNN, VDSR), which learn one set of weights for all of them,
    /// as VDSR's paper trains x2, x3 and x4 together: each patch comes from
    /// one of the scales, drawn uniformly, and validation averages over them.
    /// (Checkpoints written before this was a list store one number under
    /// `scale`; they still load.)
    #[serde(alias = "scale", deserialize_with = "one_or_many")]
    pub scales: Vec<usize>,
    /// Folders of HR training images.
    pub train: Vec<PathBuf>,
    /// Folders of HR validation images (the first decides "best").
    pub val: Vec<PathBuf>,
    /// Input patch side (SRCNN paper: 33).
    pub patch: usize,
    /// Patches per step.
    pub batch: usize,
    /// Total optimizer steps.
    pub steps: u64,
    /// Adam learning rate at step 0.
    pub lr: f32,
    /// The learning rate halves every this many steps (0 = never).
    pub lr_halve_every: u64,
    /// Loss function.
    pub loss: Loss,
    /// Seed for initial weights and patch sampling.
    pub seed: u64,
    /// Validate (and checkpoint) every this many steps.
    pub val_every: u64,
    /// A model file whose weights start the run instead of random ones,
    /// wherever a tensor's name and shape match (see [`Model::warm_start`]):
    /// e.g. a x2 network started from a trained x4 one of the same body, as
    /// the EDSR paper starts its x3 and x4 models from x2. Used only when a
    /// run starts; a resumed run takes its weights from the checkpoint.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Before every validation interval, re-initialise the ReLU units that
    /// no probe patch makes fire ([`revive`]). Plain conv-ReLU chains only
    /// (srcnn, vdsr).
    #[serde(default)]
    pub revive_dead: bool,
    /// Validate, and keep as the best weights, an exponential moving
    /// average of the weights with this decay per step
    /// ([`WeightAverage`]; BasicSR's `ema_decay`, typically 0.999) instead
    /// of the last step's weights. The checkpoint keeps both.
    #[serde(default)]
    pub ema_decay: Option<f32>,
    /// Scale augmentation: every training image also enters downscaled by
    /// each of these factors ([`data::prepare_images`]; DRRN and MemNet use
    /// 0.9, 0.8, 0.7, 0.6 on the 291 set). Empty: the images as they are.
    #[serde(default)]
    pub downscale_aug: Vec<f64>,
}

impl TrainConfig {
    /// The learning rate in force at `step`.
    pub fn lr_at(&self, step: u64) -> f32 {
        match self.lr_halve_every {
            0 => self.lr,
            n => self.lr * 0.5f32.powi((step / n).min(60) as i32),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.val_every == 0 {
            return Err(Error::invalid(
                "steps",
                "steps and val-every must be positive",
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid(
                "lr",
                format!("{} must be positive", self.lr),
            ));
        }
        if self.train.is_empty() || self.val.is_empty() {
            return Err(Error::invalid("data", "need --train and --val folders"));
        }
        if self.scales.is_empty() || self.scales.contains(&0) {
            return Err(Error::invalid("scale", format!("{:?}", self.scales)));
        }
        // (--ema's decay is checked by WeightAverage, also before any data
        // is loaded.)
        Ok(())
    }
}

/// Reads a list of scales, or one scale as a bare number.
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(usize),
        Many(Vec<usize>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// The files a run writes, derived from `--out`.
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// Best weights (model file).
    pub model: PathBuf,
    /// Latest checkpoint.
    pub checkpoint: PathBuf,
    /// CSV log.
    pub log: PathBuf,
    /// Training curve.
    pub curve: PathBuf,
}

impl RunFiles {
    /// `out` = `dir/NAME.safetensors` → `dir/NAME.{ckpt.safetensors,log.csv,curve.png}`.
    pub fn new(out: &Path) -> Self {
        let stem = out
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let sib = |suffix: &str| out.with_file_name(format!("{stem}.{suffix}"));
        RunFiles {
            model: out.to_path_buf(),
            checkpoint: sib("ckpt.safetensors"),
            log: sib("log.csv"),
            curve: sib("curve.png"),
        }
    }

    /// Every file of the run.
    pub fn all(&self) -> [&Path; 4] {
        [&self.model, &self.checkpoint, &self.log, &self.curve]
    }
}

/// Receives progress; the CLI draws a progress bar from it.
pub trait TrainObserver {
    /// Called once, before the first step, with the step to start from.
    fn on_start(&mut self, start_step: u64, total_steps: u64) {
        let _ = (start_step, total_steps);
    }
    /// Called when a new run starts from `--init` weights: how many of the
    /// network's tensors were copied from them.
    fn on_warm_start(&mut self, copied: usize, total: usize) {
        let _ = (copied, total);
    }
    /// Called when dead units were revived before step `step + 1`: how many
    /// in each hidden layer (called only when there were any).
    fn on_revival(&mut self, step: u64, revived: &[usize]) {
        let _ = (step, revived);
    }
    /// Called after every step with the step just finished (1-based) and its loss.
    fn on_step(&mut self, step: u64, loss: f32, patches_per_sec: f64) {
        let _ = (step, loss, patches_per_sec);
    }
    /// Called after each validation (a multi-scale run passes the mean over
    /// its scales, after [`TrainObserver::on_scale_scores`]).
    fn on_validation(&mut self, step: u64, psnr: f64, ssim: f64) {
        let _ = (step, psnr, ssim);
    }
    /// Called after each validation of a multi-scale run with every
    /// scale's scores.
    fn on_scale_scores(&mut self, step: u64, scores: &[ScaleScore]) {
        let _ = (step, scores);
    }
}

/// An observer that ignores everything.
pub struct Silent;
impl TrainObserver for Silent {}

/// Validation scores at one scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScaleScore {
    /// Upscaling factor.
    pub scale: usize,
    /// PSNR (dB), paper convention.
    pub psnr: f64,
    /// SSIM.
    pub ssim: f64,
}

impl ScaleScore {
    /// The mean over scales (`scale` = 0), which ranks multi-scale weights.
    fn mean(scores: &[ScaleScore]) -> ScaleScore {
        let n = scores.len().max(1) as f64;
        ScaleScore {
            scale: 0,
            psnr: scores.iter().map(|s| s.psnr).sum::<f64>() / n,
            ssim: scores.iter().map(|s| s.ssim).sum::<f64>() / n,
        }
    }
}

/// One row of the CSV log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    /// Steps done.
    pub step: u64,
    /// Learning rate of the last step.
    pub lr: f32,
    /// Mean training loss since the previous row.
    pub loss: f64,
    /// Validation PSNR (dB), paper convention; the mean over scales for a
    /// multi-scale run.
    pub val_psnr: f64,
    /// Validation SSIM (mean over scales for a multi-scale run).
    pub val_ssim: f64,
    /// Training wall time so far (s), over all resumed runs.
    pub wall_seconds: f64,
    /// A multi-scale run's scores at each scale (empty for one scale).
    #[serde(default)]
    pub per_scale: Vec<ScaleScore>,
}

/// What a checkpoint records besides tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CheckpointState {
    config: TrainConfig,
    step: u64,
    adam_step: u64,
    wall_seconds: f64,
    loss_sum: f64,
    loss_count: u64,
    best_psnr: f64,
    best_ssim: f64,
    log: Vec<LogRow>,
}

const CHECKPOINT_KEY: &str = "srkit.checkpoint";

/// Batches of training patches a unit must stay silent on to count as dead.
const REVIVAL_PROBE_BATCHES: u64 = 8;
/// Mixed into the run's seed for the re-drawn weights of revived units.
const REVIVAL_SEED: u64 = 0x7265_7669_7665;

/// Name prefix of a checkpoint's weight-average tensors.
const AVERAGE_PREFIX: &str = "ema.";

fn save_checkpoint(
    path: &Path,
    model: &Model,
    adam: &AdamState,
    average: Option<&WeightAverage>,
    st: &CheckpointState,
) -> Result<()> {
    let mut all = ParamStore::new();
    for id in model.params.ids() {
        let name = model.params.name(id);
        let value = model.params.get(id);
        all.add(name, value.clone())?;
        let i = id.index();
        all.add(
            format!("adam.m.{name}"),
            Tensor::new(value.shape(), adam.m[i].clone())?,
        )?;
        all.add(
            format!("adam.v.{name}"),
            Tensor::new(value.shape(), adam.v[i].clone())?,
        )?;
        if let Some(average) = average {
            all.add(
                format!("{AVERAGE_PREFIX}{name}"),
                average.weights().get(id).clone(),
            )?;
        }
    }
    let json = serde_json::to_string(st).map_err(|e| Error::Model(e.to_string()))?;
    let bytes =
        all.to_safetensors_with_metadata(Some(HashMap::from([(CHECKPOINT_KEY.into(), json)])))?;
    crate::io::write_atomic(path, |w| w.write_all(&bytes))
}

/// What [`load_checkpoint`] restores besides the model's weights.
struct Restored {
    adam: AdamState,
    /// The weight average's tensors, if the run kept one.
    average: Option<ParamStore>,
    state: CheckpointState,
}

fn load_checkpoint(path: &Path, model: &mut Model) -> Result<Restored> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |why: String| Error::Model(format!("checkpoint {}: {why}", path.display()));
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let st: CheckpointState = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CHECKPOINT_KEY))
        .ok_or_else(|| bad("no checkpoint metadata".into()))
        .and_then(|j| serde_json::from_str(j).map_err(|e| bad(e.to_string())))?;
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let get = |name: &str| -> Result<Tensor> {
        let view = file
            .tensor(name)
            .map_err(|_| bad(format!("missing tensor {name:?}")))?;
        tensor_from_view(name, &view)
    };
    let mut adam = AdamState {
        step: st.adam_step,
        m: Vec::new(),
        v: Vec::new(),
    };
    let has_average = file.names().iter().any(|n| n.starts_with(AVERAGE_PREFIX));
    let mut average = has_average.then(|| model.params.clone());
    let ids: Vec<_> = model.params.ids().collect();
    for id in ids {
        let name = model.params.name(id).to_string();
        model.params.set(&name, get(&name)?)?;
        adam.m.push(get(&format!("adam.m.{name}"))?.into_data());
        adam.v.push(get(&format!("adam.v.{name}"))?.into_data());
        if let Some(average) = &mut average {
            average.set(&name, get(&format!("{AVERAGE_PREFIX}{name}"))?)?;
        }
    }
    Ok(Restored {
        adam,
        average,
        state: st,
    })
}

/// The outcome of [`train`].
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Steps done (total, over resumed runs).
    pub steps: u64,
    /// Best validation PSNR and SSIM.
    pub best_psnr: f64,
    /// SSIM at the best PSNR.
    pub best_ssim: f64,
    /// Wall time over all runs, seconds.
    pub wall_seconds: f64,
    /// The files written.
    pub files: RunFiles,
}

/// Trains (or, with `resume`, continues training) a model as `config` says,
/// writing the run's files next to `out`.
pub fn train(
    config: &TrainConfig,
    out: &Path,
    resume: bool,
    observer: &mut dyn TrainObserver,
) -> Result<TrainSummary> {
    config.validate()?;
    let files = RunFiles::new(out);
    // A run killed by SIGKILL mid-write leaves a temporary file; this run
    // owns these paths now, so clear them before writing its own.
    for path in files.all() {
        crate::io::remove_stale_temp_files(path)?;
    }
    let mut model = Model::new(
        &config.arch,
        config.arch_config.clone(),
        config.scales.clone(),
        config.seed,
    )?;
    // The convolutions whose dead units --revive-dead revives (refused
    // here, before any work, for networks that are not plain chains).
    let relu_chain = match config.revive_dead {
        true => Some(model.network.relu_chain().ok_or_else(|| {
            Error::invalid(
                "revive-dead",
                format!("{} is not a plain conv-ReLU chain", config.arch),
            )
        })?),
        false => None,
    };
    let mut adam = Adam::new(
        &model.params,
        AdamConfig {
            lr: config.lr,
            ..AdamConfig::default()
        },
    );
    let mut st = CheckpointState {
        config: config.clone(),
        step: 0,
        adam_step: 0,
        wall_seconds: 0.0,
        loss_sum: 0.0,
        loss_count: 0,
        best_psnr: f64::NEG_INFINITY,
        best_ssim: 0.0,
        log: Vec::new(),
    };
    let mut average = None;
    if resume {
        let restored = load_checkpoint(&files.checkpoint, &mut model)?;
        let saved = restored.state;
        // The schedule (length, learning rate, batch and patch size, scale
        // augmentation, validation interval) may change on resume — a
        // step's batch is a pure function of (seed, step, batch, patch,
        // augmentation) — and what defines the model and its data (folders,
        // scales, loss, seed) may not.
        let same_run = TrainConfig {
            steps: config.steps,
            val_every: config.val_every,
            lr: config.lr,
            lr_halve_every: config.lr_halve_every,
            batch: config.batch,
            patch: config.patch,
            init: config.init.clone(),
            revive_dead: config.revive_dead,
            ema_decay: config.ema_decay,
            downscale_aug: config.downscale_aug.clone(),
            ..saved.config.clone()
        } == *config;
        if !same_run {
            return Err(Error::invalid(
                "resume",
                "the checkpoint was made with a different model, data, loss or seed (only \
                 --steps, --lr, --lr-halve-every, --batch, --patch, --val-every, \
                 --revive-dead, --ema and --downscale-aug may change on resume)",
            ));
        }
        adam = Adam::from_state(&model.params, adam.config, restored.adam)?;
        // An average switched on at this resume starts from the weights.
        average = match (config.ema_decay, restored.average) {
            (Some(decay), Some(saved)) => Some(WeightAverage::resume(&model.params, saved, decay)?),
            (Some(decay), None) => Some(WeightAverage::new(&model.params, decay)?),
            (None, _) => None,
        };
        st = CheckpointState {
            config: TrainConfig {
                init: saved.config.init.clone(),
                ..config.clone()
            },
            ..saved
        };
    } else if files.checkpoint.exists() {
        return Err(Error::invalid(
            "out",
            format!(
                "{} exists: pass --resume to continue that run, or choose another --out",
                files.checkpoint.display()
            ),
        ));
    } else {
        if let Some(init) = &config.init {
            let copied = model.warm_start(&Model::load(init)?)?;
            observer.on_warm_start(copied, model.params.len());
        }
        if let Some(decay) = config.ema_decay {
            average = Some(WeightAverage::new(&model.params, decay)?);
        }
    }

    let io = model.network.io();
    if io.upscale.is_some() && config.scales.len() > 1 {
        return Err(Error::invalid(
            "scale",
            format!(
                "{} upscales inside the network, one scale per model; only networks fed \
                 the bicubic-upscaled image (srcnn, vdsr) train on several scales at once",
                config.arch
            ),
        ));
    }
    // Pre-upsampling networks see input and target of the same size at
    // every scale, so the images of all scales form one pool to draw from.
    let mut images = Vec::new();
    for &scale in &config.scales {
        images.extend(data::prepare_images(
            &config.train,
            scale,
            &io,
            &config.downscale_aug,
        )?);
    }
    let crop = io.shrink;
    let sampler = PatchSampler::new(images, config.patch, crop, config.batch, config.seed)?;
    let val_sets = config
        .val
        .iter()
        .map(|d| Dataset::from_dir(d))
        .collect::<Result<Vec<_>>>()?;

    // The probe set for dead units: batches from streams no step draws.
    // Revival runs at the start of every validation interval, after the
    // checkpoint at its step was written: a run resumed from that
    // checkpoint repeats the same revival (same probes, same weights, same
    // draws) and continues exactly as the uninterrupted run.
    let probes = match relu_chain {
        Some(_) => (0..REVIVAL_PROBE_BATCHES)
            .map(|k| sampler.batch(u64::MAX - k).map(|(input, _)| input))
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    };

    observer.on_start(st.step, config.steps);
    let batches = sampler.spawn(st.step, config.steps);
    let run_start = Instant::now();
    let wall_before = st.wall_seconds;
    let mut last = Instant::now();
    while st.step < config.steps {
        if let Some(chain) = relu_chain
            .as_deref()
            .filter(|_| st.step % config.val_every == 0)
        {
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ REVIVAL_SEED);
            rng.set_stream(st.step);
            let revival =
                revive::revive_dead_units(chain, &mut model.params, &mut adam, &probes, &mut rng)?;
            if revival.total() > 0 {
                // The average's copy of a dead unit would bring its old
                // filter and outgoing weights back: it restarts too.
                if let Some(average) = &mut average {
                    for (id, range) in &revival.rewritten {
                        average.reset_to(&model.params, *id, range.clone());
                    }
                }
                observer.on_revival(st.step, &revival.per_layer);
            }
        }
        let (input, target) = batches
            .recv()
            .map_err(|_| Error::Model("the data thread stopped".into()))??;
        let mut g = Graph::new();
        let x = g.input(input);
        let y = model.network.forward(&mut g, &model.params, &x)?;
        let t = g.input(target);
        let loss = match config.loss {
            Loss::Mse => g.mse_loss(y, t)?,
            Loss::L1 => g.l1_loss(y, t)?,
        };
        let loss_value = g.scalar(loss)?;
        if !loss_value.is_finite() {
            return Err(Error::Model(format!(
                "loss became {loss_value} at step {}: lower --lr",
                st.step + 1
            )));
        }
        let grads = g.backward(loss)?;
        adam.config.lr = config.lr_at(st.step);
        adam.step(&mut model.params, &grads)?;
        if let Some(average) = &mut average {
            average.update(&model.params);
        }
        st.step += 1;
        st.loss_sum += f64::from(loss_value);
        st.loss_count += 1;
        let now = Instant::now();
        let pps = config.batch as f64 / (now - last).as_secs_f64().max(1e-9);
        last = now;
        observer.on_step(st.step, loss_value, pps);

        if st.step % config.val_every == 0 || st.step == config.steps {
            // The weights validated and kept: the average's if there is one.
            let validated = Model {
                meta: model.meta.clone(),
                network: model.network.clone(),
                params: average
                    .as_ref()
                    .map_or(&model.params, |a| a.weights())
                    .clone(),
            };
            let mut upscaler = ModelUpscaler::new(validated, config.arch.clone());
            let mut per_scale = Vec::with_capacity(config.scales.len());
            for &scale in &config.scales {
                let r = eval::evaluate(
                    &upscaler,
                    &val_sets[0],
                    scale,
                    &EvalOptions::default(),
                    &|| {},
                )?;
                per_scale.push(ScaleScore {
                    scale,
                    psnr: r.psnr,
                    ssim: r.ssim,
                });
            }
            if per_scale.len() > 1 {
                observer.on_scale_scores(st.step, &per_scale);
            }
            let r = ScaleScore::mean(&per_scale);
            observer.on_validation(st.step, r.psnr, r.ssim);
            st.wall_seconds = wall_before + run_start.elapsed().as_secs_f64();
            st.log.push(LogRow {
                step: st.step,
                lr: adam.config.lr,
                loss: st.loss_sum / st.loss_count.max(1) as f64,
                val_psnr: r.psnr,
                val_ssim: r.ssim,
                wall_seconds: st.wall_seconds,
                per_scale: if per_scale.len() > 1 {
                    per_scale
                } else {
                    Vec::new()
                },
            });
            st.loss_sum = 0.0;
            st.loss_count = 0;
            if r.psnr > st.best_psnr {
                st.best_psnr = r.psnr;
                st.best_ssim = r.ssim;
                upscaler.model.meta.training = TrainingRecord {
                    data: config
                        .train
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect(),
                    downscale_aug: config.downscale_aug.clone(),
                    steps: st.step,
                    batch_size: config.batch,
                    wall_seconds: st.wall_seconds,
                    val_dataset: val_sets[0].name.clone(),
                    val_psnr: r.psnr,
                    val_ssim: r.ssim,
                };
                upscaler.model.save(&files.model)?;
            }
            write_log(&files.log, &st.log)?;
            plot::write_curve(&files.curve, &st.log)?;
            st.adam_step = adam.state().step;
            save_checkpoint(
                &files.checkpoint,
                &model,
                adam.state(),
                average.as_ref(),
                &st,
            )?;
        }
    }
    Ok(TrainSummary {
        steps: st.step,
        best_psnr: st.best_psnr,
        best_ssim: st.best_ssim,
        wall_seconds: st.wall_seconds,
        files,
    })
}

fn write_log(path: &Path, rows: &[LogRow]) -> Result<()> {
    let mut text = String::from("step,lr,loss,val_psnr,val_ssim,wall_seconds");
    // A multi-scale run adds each scale's scores after the mean's.
    let scales: Vec<usize> = rows.first().map_or(Vec::new(), |r| {
        r.per_scale.iter().map(|s| s.scale).collect()
    });
    for s in &scales {
        text += &format!(",val_psnr_x{s},val_ssim_x{s}");
    }
    text.push('\n');
    for r in rows {
        text += &format!(
            "{},{:e},{:.8},{:.4},{:.6},{:.1}",
            r.step, r.lr, r.loss, r.val_psnr, r.val_ssim, r.wall_seconds
        );
        for s in &r.per_scale {
            text += &format!(",{:.4},{:.6}", s.psnr, s.ssim);
        }
        text.push('\n');
    }
    crate::io::write_atomic(path, |w| w.write_all(text.as_bytes()))
}
