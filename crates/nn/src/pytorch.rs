//! PyTorch's legacy `.pth` format (`torch.save` before 1.6, or with
//! `_use_new_zipfile_serialization=False`): the format of the MixTrain authors' published
//! weights. A plain state dict only: five pickles in a row (magic number, protocol version,
//! system info, the state dict, the storage keys), then each storage's element count and raw
//! little-endian values, in the order of the keys.
//!
//! The state dict is read by a small pickle machine that knows the opcodes and the three
//! globals such a file uses (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, the
//! storage types); anything else (a pickled module, custom classes) is refused with the name of
//! what it met, never executed.

use std::collections::HashMap;

/// A tensor of the state dict: name, shape and float32 values (row-major, contiguous).
pub(crate) type Named = (String, Vec<usize>, Vec<f32>);

/// The legacy format's magic number, the first pickle of the file.
const MAGIC: i128 = 0x1950a86a20f9469cfc6c;

/// A value on the pickle machine's stack.
#[derive(Clone, Debug)]
enum Value {
    Mark,
    None,
    /// A boolean or a float: carried by a state dict (`requires_grad`) but by no tensor value.
    Scalar,
    Int(i128),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String),
    /// A persistent id's storage: its key and element type.
    Storage {
        key: String,
        dtype: String,
    },
    /// `_rebuild_tensor_v2(storage, offset, size, stride, ...)`.
    Tensor {
        key: String,
        dtype: String,
        offset: usize,
        size: Vec<usize>,
        stride: Vec<usize>,
    },
}

/// Reads bytes in order, naming what was expected when they run out.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.at..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("unterminated line")?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.at += end + 1;
        Ok(s)
    }

    fn text(&mut self, n: usize) -> Result<String, String> {
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

fn int(v: &Value) -> Result<usize, String> {
    match v {
        Value::Int(i) => usize::try_from(*i).map_err(|_| format!("integer {i} out of range")),
        other => Err(format!("expected a non-negative integer, found {other:?}")),
    }
}

fn ints(v: &Value) -> Result<Vec<usize>, String> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(int).collect(),
        other => Err(format!("expected a tuple of integers, found {other:?}")),
    }
}

/// Pops values down to the last mark.
fn since_mark(stack: &mut Vec<Value>) -> Result<Vec<Value>, String> {
    let mark = stack
        .iter()
        .rposition(|v| matches!(v, Value::Mark))
        .ok_or("no mark on the stack")?;
    let items = stack.split_off(mark + 1);
    stack.pop();
    Ok(items)
}

/// `callable(*args)` for the callables a state dict uses.
fn reduce(callable: Value, args: Value) -> Result<Value, String> {
    let Value::Global(name) = callable else {
        return Err(format!("cannot call {callable:?}"));
    };
    let Value::Tuple(args) = args else {
        return Err(format!("{name}: arguments are not a tuple"));
    };
    match (name.as_str(), args.as_slice()) {
        ("collections OrderedDict", []) => Ok(Value::Dict(Vec::new())),
        ("torch._utils _rebuild_tensor_v2", [storage, offset, size, stride, ..]) => {
            let Value::Storage { key, dtype, .. } = storage else {
                return Err(format!("{name}: the first argument is not a storage"));
            };
            Ok(Value::Tensor {
                key: key.clone(),
                dtype: dtype.clone(),
                offset: int(offset)?,
                size: ints(size)?,
                stride: ints(stride)?,
            })
        }
        _ => Err(format!(
            "{name} is not part of a plain state dict (a pickled module or custom object?)"
        )),
    }
}

/// Runs one pickle to its STOP and returns its value. The memo keeps copies: enough for a
/// state dict, whose memoised values (globals, shapes, storages) are not changed after.
fn unpickle(r: &mut Reader) -> Result<Value, String> {
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();
    let pop = |stack: &mut Vec<Value>| stack.pop().ok_or_else(|| "stack underflow".to_string());
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?; // PROTO
            }
            b'.' => return pop(&mut stack),
            b'(' => stack.push(Value::Mark),
            b'N' => stack.push(Value::None),
            0x88 | 0x89 => stack.push(Value::Scalar),
            b'K' => stack.push(Value::Int(i128::from(r.u8()?))),
            b'M' => {
                let b = r.take(2)?;
                stack.push(Value::Int(i128::from(u16::from_le_bytes([b[0], b[1]]))));
            }
            b'J' => stack.push(Value::Int(i128::from(r.u32()? as i32))),
            0x8a => {
                // LONG1: little-endian two's complement of n bytes
                let n = usize::from(r.u8()?);
                let b = r.take(n)?;
                if n > 16 {
                    return Err(format!("an integer of {n} bytes"));
                }
                let mut v: i128 = 0;
                for (i, byte) in b.iter().enumerate() {
                    v |= i128::from(*byte) << (8 * i);
                }
                if n > 0 && n < 16 && b[n - 1] & 0x80 != 0 {
                    v -= 1i128 << (8 * n);
                }
                stack.push(Value::Int(v));
            }
            b'G' => {
                r.take(8)?;
                stack.push(Value::Scalar);
            }
            b'X' => {
                let n = r.u32()? as usize;
                stack.push(Value::Str(r.text(n)?));
            }
            b'U' | 0x8c => {
                let n = usize::from(r.u8()?);
                stack.push(Value::Str(r.text(n)?));
            }
            b'T' => {
                let n = r.u32()? as usize;
                stack.push(Value::Str(r.text(n)?));
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                stack.push(Value::Global(format!("{module} {name}")));
            }
            b')' => stack.push(Value::Tuple(Vec::new())),
            b't' => {
                let items = since_mark(&mut stack)?;
                stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if stack.len() < n {
                    return Err("stack underflow".into());
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b']' => stack.push(Value::List(Vec::new())),
            b'}' => stack.push(Value::Dict(Vec::new())),
            b'a' => {
                let v = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::List(items)) => items.push(v),
                    _ => return Err("APPEND to a non-list".into()),
                }
            }
            b'e' => {
                let items = since_mark(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::List(list)) => list.extend(items),
                    _ => return Err("APPENDS to a non-list".into()),
                }
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    vec![k, v]
                } else {
                    since_mark(&mut stack)?
                };
                let Some(Value::Dict(dict)) = stack.last_mut() else {
                    return Err("SETITEMS on a non-dict".into());
                };
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    dict.push((k, v));
                }
            }
            b'q' => {
                let i = u32::from(r.u8()?);
                memo.insert(i, stack.last().cloned().ok_or("memo of nothing")?);
            }
            b'r' => {
                let i = r.u32()?;
                memo.insert(i, stack.last().cloned().ok_or("memo of nothing")?);
            }
            b'h' | b'j' => {
                let i = if op == b'h' {
                    u32::from(r.u8()?)
                } else {
                    r.u32()?
                };
                stack.push(memo.get(&i).cloned().ok_or("unknown memo entry")?);
            }
            b'R' => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                stack.push(reduce(callable, args)?);
            }
            // an OrderedDict's state (its `_metadata` attribute): not a tensor, dropped
            b'b' => {
                pop(&mut stack)?;
            }
            b'Q' => {
                let pid = pop(&mut stack)?;
                stack.push(storage(pid)?);
            }
            other => return Err(format!("pickle opcode 0x{other:02x} is not supported")),
        }
    }
}

/// A persistent id `('storage', type, key, location, numel, view_metadata)`.
fn storage(pid: Value) -> Result<Value, String> {
    match pid {
        Value::Tuple(items) => match items.as_slice() {
            [Value::Str(kind), Value::Global(dtype), Value::Str(key), ..] if kind == "storage" => {
                Ok(Value::Storage {
                    key: key.clone(),
                    dtype: dtype.clone(),
                })
            }
            _ => Err(format!("unsupported persistent id {items:?}")),
        },
        other => Err(format!("unsupported persistent id {other:?}")),
    }
}

/// Every float32 tensor of a legacy `.pth` state dict, in the file's order.
pub(crate) fn read_state_dict(bytes: &[u8]) -> Result<Vec<Named>, String> {
    if bytes.starts_with(b"PK") {
        return Err(
            "PyTorch's zip format (torch.save since 1.6) is not read here: save it with \
                    safetensors.torch.save_file(model.state_dict(), path) and load that"
                .into(),
        );
    }
    let mut r = Reader { bytes, at: 0 };
    match unpickle(&mut r)? {
        Value::Int(m) if m == MAGIC => {}
        other => return Err(format!("not a PyTorch file (magic number {other:?})")),
    }
    unpickle(&mut r)?; // protocol version
    unpickle(&mut r)?; // system info
    let Value::Dict(entries) = unpickle(&mut r)? else {
        return Err("the file holds no state dict (a whole pickled model?)".into());
    };
    let Value::List(keys) = unpickle(&mut r)? else {
        return Err("no storage key list".into());
    };
    // the storages follow in key order: an int64 element count, then the values
    let mut storages: HashMap<String, Vec<f32>> = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            return Err(format!("storage key {key:?} is not a string"));
        };
        let b = r.take(8)?;
        let numel = u64::from_le_bytes(b.try_into().map_err(|_| "count")?) as usize;
        let raw = r.take(numel.checked_mul(4).ok_or("storage too large")?)?;
        let values = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        storages.insert(key, values);
    }
    entries
        .into_iter()
        .map(|(name, tensor)| {
            let Value::Str(name) = name else {
                return Err(format!("a state dict key {name:?} is not a string"));
            };
            tensor_values(&name, tensor, &storages).map(|(shape, values)| (name, shape, values))
        })
        .collect()
}

/// The values of one tensor of the state dict, which must be float32 and contiguous.
fn tensor_values(
    name: &str,
    tensor: Value,
    storages: &HashMap<String, Vec<f32>>,
) -> Result<(Vec<usize>, Vec<f32>), String> {
    let Value::Tensor {
        key,
        dtype,
        offset,
        size,
        stride,
    } = tensor
    else {
        return Err(format!("{name} is not a tensor"));
    };
    if dtype != "torch FloatStorage" {
        return Err(format!(
            "{name} is {dtype}, expected float32 (torch FloatStorage)"
        ));
    }
    let contiguous: Vec<usize> = (0..size.len())
        .map(|i| size[i + 1..].iter().product())
        .collect();
    if size.iter().product::<usize>() > 1 && stride != contiguous {
        return Err(format!("{name} is not contiguous (stride {stride:?})"));
    }
    let numel: usize = size.iter().product();
    let storage = storages
        .get(&key)
        .ok_or_else(|| format!("{name}: storage {key} is missing"))?;
    let values = storage
        .get(offset..offset + numel)
        .ok_or_else(|| format!("{name}: storage {key} is shorter than the tensor"))?;
    Ok((size, values.to_vec()))
}
