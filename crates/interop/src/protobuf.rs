//! The few pieces of the protobuf wire format an ONNX file needs: varints, length-delimited
//! fields (strings, bytes, nested messages) and 32-bit floats. Repeated scalars are written
//! unpacked, one key per value, which every proto2 and proto3 reader accepts (onnx.proto is
//! proto2).

/// A message being encoded: fields are appended in the order they are given.
#[derive(Default)]
pub(crate) struct Message(Vec<u8>);

const VARINT: u64 = 0;
const LENGTH_DELIMITED: u64 = 2;
const FIXED32: u64 = 5;

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u64, wire: u64) {
        self.varint(field << 3 | wire);
    }

    /// An integer field (int32, int64 or enum; negative values as ten-byte varints).
    pub fn int(mut self, field: u64, v: i64) -> Self {
        self.key(field, VARINT);
        self.varint(v as u64);
        self
    }

    /// A repeated integer field.
    pub fn ints(self, field: u64, vs: impl IntoIterator<Item = i64>) -> Self {
        vs.into_iter().fold(self, |m, v| m.int(field, v))
    }

    pub fn float(mut self, field: u64, v: f32) -> Self {
        self.key(field, FIXED32);
        self.0.extend(v.to_le_bytes());
        self
    }

    pub fn bytes(mut self, field: u64, b: &[u8]) -> Self {
        self.key(field, LENGTH_DELIMITED);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    pub fn string(self, field: u64, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }

    pub fn message(self, field: u64, m: Message) -> Self {
        self.bytes(field, &m.0)
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_examples_of_the_protobuf_documentation() {
        // field 1 = 150: 08 96 01; field 2 = "testing"; negative int64 takes ten bytes
        assert_eq!(
            Message::default().int(1, 150).into_bytes(),
            [0x08, 0x96, 0x01]
        );
        assert_eq!(
            Message::default().string(2, "testing").into_bytes(),
            [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']
        );
        let neg = Message::default().int(1, -1).into_bytes();
        assert_eq!(neg.len(), 11);
        assert_eq!(neg[10], 0x01);
        assert_eq!(
            Message::default().float(2, 1.0).into_bytes(),
            [0x15, 0x00, 0x00, 0x80, 0x3f]
        );
        let nested = Message::default().message(3, Message::default().int(1, 150));
        assert_eq!(nested.into_bytes(), [0x1a, 0x03, 0x08, 0x96, 0x01]);
    }
}
