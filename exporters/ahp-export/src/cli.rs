//! The `ahp-export` command line, shared by the standalone `ahp-export` binary and the
//! `ahp export` subcommand of the workspace's front door, so that both run exactly the same
//! code: parse [`ExportArgs`], load the source ([`Prepared::load`]), [`export`] it and print
//! what was written.
//!
//! A binary flattens [`ExportArgs`] into its parser and hands the parsed arguments to [`main`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{ArgGroup, Args};

use crate::export::{export, ExportOptions, ExportSummary, Prepared, Source};
use crate::onnx::{OnnxOptions, DEFAULT_OPSET};
use crate::triton::{TritonKind, TritonOptions};

/// Exit code of a failed export.
const ERROR_EXIT_CODE: u8 = 1;

/// Real command lines shown at the end of `--help`.
const EXAMPLES: &str = "\
Examples:
  ahp-export --run runs/pacs-ahp model.onnx
  ahp-export --run runs/pacs-ahp --prune-heads 0.05 --triton triton-repo pruned.onnx
  ahp-export --run runs/pacs-ahp --fp16 --triton triton-repo --triton-kind gpu --triton-trt model.onnx
  ahp-export --clip openai/clip-vit-base-patch16 --classes dog,elephant,giraffe --template \"a photo of a {}.\" zero_shot.onnx";

/// Export a purified (or zero-shot) CLIP image classifier to ONNX.
///
/// The ONNX model takes `pixel_values` f32 [batch, 3, S, S] (CLIP-normalized) and returns
/// `logits` [batch, C] and L2-normalized `image_embeds` [batch, P]. Before the file is moved
/// into place it is run with tract and compared with the candle model (unless --no-verify).
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["run", "clip"])))]
#[command(after_help = EXAMPLES)]
pub struct ExportArgs {
    /// A training run directory (run.json + adapter.safetensors).
    #[arg(long, value_name = "RUN_DIR")]
    pub run: Option<PathBuf>,
    /// Base checkpoint for --run, instead of the one run.json names.
    #[arg(long, value_name = "DIR|REPO_ID", requires = "run")]
    pub base: Option<String>,
    /// Skip the sha256 check of the base weights against run.json.
    #[arg(long, requires = "run")]
    pub skip_base_check: bool,
    /// A CLIP checkpoint directory or cached Hugging Face repo id (zero-shot export).
    #[arg(long, value_name = "DIR|REPO_ID", requires = "classes")]
    pub clip: Option<String>,
    /// Comma-separated class labels (with --clip).
    #[arg(long, value_delimiter = ',', requires = "clip")]
    pub classes: Vec<String>,
    /// Prompt template with one `{}` (with --clip); repeat for a prompt ensemble (the class
    /// embedding is the normalized mean over the templates). A run's export uses the run's.
    #[arg(long = "template", default_value = ahp_model::DEFAULT_TEMPLATE, requires = "clip")]
    pub templates: Vec<String>,
    /// ONNX opset (13..=21).
    #[arg(long, default_value_t = DEFAULT_OPSET)]
    pub opset: i64,
    /// f16 weights and compute (inputs and outputs stay f32).
    #[arg(long)]
    pub fp16: bool,
    /// Do not validate the written model with tract.
    #[arg(long)]
    pub no_verify: bool,
    /// Remove heads whose gate is <= THRESHOLD from the graph.
    #[arg(long, value_name = "THRESHOLD")]
    pub prune_heads: Option<f32>,
    /// With --prune-heads: allow removing every head of a block (refused by default).
    #[arg(long, requires = "prune_heads")]
    pub prune_empty_blocks: bool,
    /// Also write a Triton model repository entry under this directory.
    #[arg(long, value_name = "REPO_DIR")]
    pub triton: Option<PathBuf>,
    /// Model name in the Triton repository (default: the output file's stem).
    #[arg(long, requires = "triton")]
    pub triton_name: Option<String>,
    /// Triton: where the instances run (cpu: KIND_CPU, loads on any Triton; gpu: KIND_GPU).
    #[arg(long, value_enum, default_value = "cpu", requires = "triton")]
    pub triton_kind: TritonKind,
    /// Triton, with --triton-kind gpu: TensorRT as the execution accelerator.
    #[arg(long, requires = "triton")]
    pub triton_trt: bool,
    /// Triton, with --triton-trt: FP16 precision.
    #[arg(long, requires = "triton")]
    pub triton_fp16: bool,
    /// Triton: the largest batch the dynamic batcher forms.
    #[arg(long, default_value_t = 32, requires = "triton")]
    pub triton_max_batch: usize,
    /// Triton: the dynamic batcher's queue delay in microseconds.
    #[arg(long, default_value_t = 2000, requires = "triton")]
    pub triton_queue_delay_us: u64,
    /// Triton: ONNX Runtime intra-op threads of the instance (default: ONNX Runtime's, all
    /// cores).
    #[arg(long, requires = "triton")]
    pub triton_threads: Option<usize>,
    /// Images in the validation batch.
    #[arg(long, default_value_t = 2)]
    pub validation_batch: usize,
    /// Output .onnx file.
    pub output: PathBuf,
}

/// Runs `ahp-export` (or `ahp export`) with parsed `args`: exit code 0, or 1 after printing
/// `error: ...` with its causes on stderr.
pub fn main(args: ExportArgs) -> ExitCode {
    ahp_spec::exit::finish(run(&args).map(|()| ExitCode::SUCCESS), ERROR_EXIT_CODE)
}

/// Checks the arguments, loads and exports the model, and prints what was written.
fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let source = source(args)?;
    if args.validation_batch < 2 {
        bail!("--validation-batch must be at least 2");
    }
    let options = export_options(args)?;
    let prepared = Prepared::load(&source).context("cannot load the model")?;
    let summary = export(&prepared, &args.output, &options).context("export failed")?;
    print_summary(args, &prepared, &summary);
    Ok(())
}

/// The run directory of `--run`, or the checkpoint, labels and templates of `--clip`.
fn source(args: &ExportArgs) -> anyhow::Result<Source> {
    Ok(match (&args.run, &args.clip) {
        (Some(run_dir), None) => Source::Run {
            run_dir: run_dir.clone(),
            base: args.base.clone(),
            verify_base_sha256: !args.skip_base_check,
        },
        (None, Some(clip)) => {
            let labels = labels(&args.classes)?;
            ahp_spec::run::check_templates(&args.templates)
                .map_err(|m| anyhow::anyhow!("--template: {m}"))?;
            Source::ZeroShot {
                clip: clip.clone(),
                labels,
                templates: args.templates.clone(),
            }
        }
        _ => bail!("give exactly one of --run and --clip"),
    })
}

/// The trimmed `--classes` labels: at least one, none empty, none twice.
fn labels(classes: &[String]) -> anyhow::Result<Vec<String>> {
    ahp_spec::run::check_labels(classes).map_err(|m| anyhow::anyhow!("--classes: {m}"))
}

/// The export options of the flags, after checking the output directory and the opset.
fn export_options(args: &ExportArgs) -> anyhow::Result<ExportOptions> {
    let triton = args.triton.as_ref().map(|repo| TritonOptions {
        kind: args.triton_kind,
        tensorrt: args.triton_trt,
        fp16: args.triton_fp16,
        max_batch_size: args.triton_max_batch,
        queue_delay_us: args.triton_queue_delay_us,
        intra_op_threads: args.triton_threads,
        ..TritonOptions::new(repo, &triton_name(args))
    });
    if let Some(t) = &triton {
        t.check()?;
    }
    if let Some(parent) = args.output.parent() {
        if !parent.as_os_str().is_empty() && !parent.is_dir() {
            bail!("{}: output directory does not exist", parent.display());
        }
    }
    let options = ExportOptions {
        onnx: OnnxOptions {
            opset: args.opset,
            fp16: args.fp16,
        },
        verify: !args.no_verify,
        prune_threshold: args.prune_heads,
        prune_empty_blocks: args.prune_empty_blocks,
        validation_batch: args.validation_batch,
        triton,
        ..ExportOptions::default()
    };
    options
        .onnx
        .check()
        .map_err(|e| anyhow::anyhow!("--opset: {e}"))?;
    Ok(options)
}

/// `--triton-name`, or the output file's stem (`ahp_clip` without one).
fn triton_name(args: &ExportArgs) -> String {
    match &args.triton_name {
        Some(n) => n.clone(),
        None => args
            .output
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "ahp_clip".into()),
    }
}

/// Prints the model, graph, pruning, validation and written files.
fn print_summary(args: &ExportArgs, prepared: &Prepared, summary: &ExportSummary) {
    let g = &summary.graph;
    println!(
        "method {}, {} classes, {} blocks",
        prepared.method.as_str(),
        prepared.labels.len(),
        prepared.config.vision_config.num_hidden_layers
    );
    println!(
        "graph: {} nodes, {} initializers ({} parameters), opset {}{}",
        g.nodes,
        g.initializers,
        g.parameters,
        args.opset,
        if args.fp16 { ", fp16" } else { "" }
    );
    let ops: Vec<String> = g.op_types.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("ops: {}", ops.join(", "));
    print_pruning(summary);
    print_validation(summary);
    println!(
        "wrote {} ({})",
        summary.path.display(),
        human_bytes(summary.bytes)
    );
    if let Some(dir) = &summary.triton_dir {
        println!("wrote Triton model {}", dir.display());
    }
}

/// The heads removed and the FLOPs saved, if pruning.
fn print_pruning(summary: &ExportSummary) {
    let Some(p) = &summary.pruning else {
        return;
    };
    println!(
        "pruned {} heads (gate <= {}): per block kept {:?}",
        p.plan.removed_count(),
        p.plan.threshold,
        p.plan.heads_per_block()
    );
    println!(
        "FLOPs per image: {:.3e} -> {:.3e} ({:.1}% fewer)",
        p.flops_before as f64,
        p.flops_after as f64,
        100.0 * (1.0 - p.flops_after as f64 / p.flops_before.max(1) as f64)
    );
    for (name, d) in &p.diff_vs_unpruned {
        println!("  {name}: max |pruned - unpruned| = {d:.3e}");
    }
}

/// The max differences to the candle model per output, or that the model is unvalidated.
fn print_validation(summary: &ExportSummary) {
    match &summary.validation {
        Some(v) => {
            println!("validated with tract on a batch of {}:", v.batch);
            for o in &v.outputs {
                println!(
                    "  {} {:?}: max |onnx - candle| = {:.3e} (tolerance {:.1e})",
                    o.name, o.shape, o.max_abs_diff, o.tolerance
                );
            }
        }
        None => println!("not validated (--no-verify)"),
    }
}

/// A size in bytes as `1.23 GB`, `4.56 MB` or `7.8 kB`.
fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else {
        format!("{:.1} kB", b / 1e3)
    }
}
