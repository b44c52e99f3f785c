use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::NnError;

/// The compute backend, chosen at run time.
///
/// `flex` is the default CPU backend: on our hot paths (conv2d and matmul, forward and backward,
/// at the sizes of the paper's models) it is several times faster than `ndarray`, whose conv
/// input-gradient is a naive loop (figures in README "Backends"). `ndarray` stays supported.
/// The GPU backends are compiled only with their cargo features: `wgpu` (Vulkan, Metal, DX12)
/// and `cuda` (CubeCL's CUDA runtime, which loads the NVIDIA driver and NVRTC at run time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `burn-flex` on the CPU: the default and the fastest CPU backend.
    #[default]
    Flex,
    /// `burn-ndarray` on the CPU: slower, kept for the users who ask for it.
    Ndarray,
    /// `burn-wgpu` on a GPU (Vulkan, Metal, DX12); needs the cargo feature `wgpu`.
    Wgpu,
    /// `burn-cuda` on an NVIDIA GPU; needs the cargo feature `cuda`.
    Cuda,
}

impl Backend {
    /// Every backend, compiled into this build or not (see [`Backend::is_compiled`]).
    pub const ALL: [Backend; 4] = [
        Backend::Flex,
        Backend::Ndarray,
        Backend::Wgpu,
        Backend::Cuda,
    ];

    /// The lowercase name used in configs, on the command line and in serde
    /// (`flex`, `ndarray`, `wgpu`, `cuda`); [`FromStr`] parses it back.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        }
    }

    /// Whether this build has the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Flex | Backend::Ndarray => true,
            Backend::Wgpu => cfg!(feature = "wgpu"),
            Backend::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The device to run on. `index` picks the n-th discrete GPU for `wgpu` (default: wgpu's
    /// preferred adapter) or the n-th CUDA device (default: the first), and is ignored by the
    /// CPU backends. A GPU device is opened here, so that a machine without one gets an error
    /// rather than a panic in the first kernel. Always pass the device explicitly: with a GPU
    /// backend compiled in, burn's `Device::default()` would pick the GPU.
    pub fn device(self, index: Option<usize>) -> Result<Device, NnError> {
        match self {
            Backend::Flex => Ok(Device::flex()),
            #[allow(deprecated)] // burn deprecates ndarray in favour of flex; our users want it
            Backend::Ndarray => Ok(Device::ndarray()),
            Backend::Wgpu => wgpu_device(index),
            Backend::Cuda => cuda_device(index),
        }
    }
}

/// What `device` runs on, for logs and reports: `cpu` for the CPU backends, the GPU's name
/// (e.g. `NVIDIA H100 80GB HBM3`, `llvmpipe (LLVM 15.0.6, 256 bits)`) for wgpu and cuda.
pub fn adapter_name(device: &Device) -> String {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if let Some(identity) = device.identity() {
        return identity.name;
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    let _ = device;
    "cpu".into()
}

/// Opens `device`: cubecl reports a missing GPU, driver or runtime library by panicking, and
/// its message is the useful part, returned as the error.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn open(device: Device) -> Result<Device, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| device.identity()));
    std::panic::set_hook(hook);
    match opened {
        Ok(_) => Ok(device),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the device could not be opened".into())),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device(index: Option<usize>) -> Result<Device, NnError> {
    use burn::tensor::DeviceKind;
    let device = Device::wgpu(match index {
        Some(i) => DeviceKind::DiscreteGpu(i),
        None => DeviceKind::DefaultDevice,
    });
    open(device).map_err(|reason| NnError::NoAdapter {
        device: match index {
            Some(i) => format!("discrete GPU {i}"),
            None => "the default adapter".into(),
        },
        reason,
    })
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device(_index: Option<usize>) -> Result<Device, NnError> {
    Err(missing(Backend::Wgpu))
}

#[cfg(feature = "cuda")]
fn cuda_device(index: Option<usize>) -> Result<Device, NnError> {
    open(Device::cuda(index.unwrap_or(0))).map_err(|reason| NnError::NoCudaDevice {
        device: match index {
            Some(i) => format!("CUDA device {i}"),
            None => "the default CUDA device".into(),
        },
        reason,
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(_index: Option<usize>) -> Result<Device, NnError> {
    Err(missing(Backend::Cuda))
}

/// A GPU backend this build lacks: the cargo feature of its name brings it in.
#[cfg(not(all(feature = "wgpu", feature = "cuda")))]
fn missing(backend: Backend) -> NnError {
    NnError::BackendMissing {
        backend: backend.name().into(),
        hint: format!(
            "rebuild with `--features {backend}` (e.g. `cargo build --release -p mixtrain-cli \
             --features {backend}`)"
        ),
    }
}

impl FromStr for Backend {
    type Err = NnError;

    fn from_str(s: &str) -> Result<Self, NnError> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| NnError::UnknownBackend(s.to_string()))
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_an_error() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        }
        let e = "rocm".parse::<Backend>().unwrap_err().to_string();
        assert!(e.contains("rocm") && e.contains("cuda"), "{e}");
    }

    #[test]
    fn cpu_backends_always_give_a_device() {
        assert!(Backend::Flex.device(None).is_ok());
        assert!(Backend::Ndarray.device(None).is_ok());
    }

    #[cfg(not(feature = "wgpu"))]
    #[test]
    fn missing_wgpu_is_a_clear_error() {
        let e = Backend::Wgpu.device(None).unwrap_err().to_string();
        assert!(e.contains("wgpu") && e.contains("--features wgpu"), "{e}");
    }

    /// With CUDA compiled in, a machine without an NVIDIA GPU, driver or NVRTC gets an error
    /// that says so, never a panic; with one, the device opens and names the GPU.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_opens_or_refuses_by_name() {
        match Backend::Cuda.device(Some(0)) {
            Ok(device) => assert_ne!(adapter_name(&device), "cpu"),
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.starts_with("no CUDA device: cannot open CUDA device 0: "),
                    "{e}"
                );
            }
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_cuda_is_a_clear_error() {
        let e = Backend::Cuda.device(Some(1)).unwrap_err().to_string();
        assert!(e.contains("cuda") && e.contains("--features cuda"), "{e}");
    }
}
