//! Checkpoints: `checkpoints/epoch-NNNN/{model.bpk, optim.bpk, state.json}` and a `latest`
//! file naming the newest. A checkpoint directory is filled under a temporary name and renamed
//! into place, then `latest` is replaced atomically: whatever moment a run is killed, `latest`
//! names a whole checkpoint.

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::tensor::{Bytes, Device};
use mixtrain_nn::{Architecture, Network, write_atomic};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// Training state beside the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct State {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: usize,
    /// The DMT policy's state (absent in checkpoints of natural runs from before DMT).
    #[serde(default)]
    pub dmt: Option<mixtrain_loss::Dmt>,
}

pub(crate) fn dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

fn cerr(path: &Path, message: impl ToString) -> TrainError {
    TrainError::Checkpoint {
        path: path.into(),
        message: message.to_string(),
    }
}

/// Saves a checkpoint and keeps the newest `keep`.
pub(crate) fn save(
    run: &Path,
    model: &Network,
    optim: &ModuleOptimizer,
    state: &State,
    keep: usize,
) -> Result<(), TrainError> {
    let root = dir(run);
    std::fs::create_dir_all(&root).map_err(TrainError::io(&root))?;
    let name = format!("epoch-{:04}", state.epoch);
    let tmp = root.join(format!(".tmp-{name}"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(TrainError::io(&tmp))?;
    model.save_checkpoint(&tmp.join("model.bpk"))?;
    let optim_path = tmp.join("optim.bpk");
    let bytes = optim.into_bytes().map_err(|e| cerr(&optim_path, e))?;
    write_atomic(&optim_path, &bytes).map_err(TrainError::io(&optim_path))?;
    let state_path = tmp.join("state.json");
    let json = serde_json::to_vec_pretty(state).expect("state serialises");
    write_atomic(&state_path, &json).map_err(TrainError::io(&state_path))?;
    let target = root.join(&name);
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&tmp, &target).map_err(TrainError::io(&target))?;
    let latest = root.join("latest");
    write_atomic(&latest, name.as_bytes()).map_err(TrainError::io(&latest))?;
    prune(&root, keep)
}

fn prune(root: &Path, keep: usize) -> Result<(), TrainError> {
    let mut epochs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(TrainError::io(root))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("epoch-"))
        })
        .collect();
    epochs.sort();
    let excess = epochs.len().saturating_sub(keep);
    for old in &epochs[..excess] {
        std::fs::remove_dir_all(old).map_err(TrainError::io(old))?;
    }
    Ok(())
}

/// A loaded checkpoint.
pub(crate) struct Loaded {
    pub model: Network,
    pub optim: ModuleOptimizer,
    pub state: State,
}

/// Loads the checkpoint `latest` names, if there is one.
pub(crate) fn load_latest(
    run: &Path,
    arch: &Architecture,
    optim: ModuleOptimizer,
    device: &Device,
) -> Result<Option<Loaded>, TrainError> {
    let latest = dir(run).join("latest");
    let name = match std::fs::read_to_string(&latest) {
        Ok(name) => name,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TrainError::io(&latest)(e)),
    };
    let ckpt = dir(run).join(name.trim());
    let model = Network::load_checkpoint(arch, &ckpt.join("model.bpk"), device)?;
    let optim_path = ckpt.join("optim.bpk");
    let bytes = std::fs::read(&optim_path).map_err(TrainError::io(&optim_path))?;
    let optim = optim
        .from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| cerr(&optim_path, e))?;
    let state_path = ckpt.join("state.json");
    let text = std::fs::read(&state_path).map_err(TrainError::io(&state_path))?;
    let state = serde_json::from_slice(&text).map_err(|e| cerr(&state_path, e))?;
    Ok(Some(Loaded {
        model,
        optim,
        state,
    }))
}
