//! The protobuf wire format, read only: varints, keys and length-delimited slices over a
//! byte slice, every read bounds-checked (a short or malformed body is an error, never a
//! panic), plus the shape of the field table that `schema.rs` fills in. Used by `mod.rs`.

use super::DecodeError;

/// How a message turns into JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An object with one key per present field.
    Plain,
    /// `intstr.IntOrString`: `type` 0 is the number `intVal`, 1 the string `strVal`.
    IntOrString,
    /// `resource.Quantity`: its one `string` field.
    Quantity,
    /// `metav1.Time`: RFC 3339 to the second (upstream drops the nanoseconds).
    Time,
    /// `metav1.MicroTime`: RFC 3339 to the microsecond.
    MicroTime,
    /// `runtime.RawExtension` and `metav1.FieldsV1`: field 1 holds JSON text.
    RawJson,
}

/// A field's type: the scalar types Kubernetes messages use, or a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Int64,
    Int32,
    Bool,
    String,
    Bytes,
    /// A message, by its index in `schema::MESSAGES`.
    Message(u16),
}

/// Whether a field holds one value, a list, or a map (repeated `key`/`value` entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Single,
    Repeated,
    Map,
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    /// The field number on the wire.
    pub number: u32,
    /// The JSON name (the proto name of these files is the JSON name).
    pub json: &'static str,
    pub ty: Ty,
    pub label: Label,
    /// A Go pointer: a zero on the wire was set on purpose and stays in the JSON.
    pub keep_zero: bool,
}

/// One message type.
#[derive(Debug)]
pub struct Message {
    /// The fully qualified proto name.
    pub name: &'static str,
    pub shape: Shape,
    /// Sorted by number.
    pub fields: &'static [Field],
}

impl Message {
    /// The field with this number, if the message has one.
    pub fn field(&self, number: u32) -> Option<&'static Field> {
        self.fields
            .binary_search_by_key(&number, |f| f.number)
            .ok()
            .map(|i| &self.fields[i])
    }
}

/// A value as it lies on the wire, before the schema gives it a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raw<'a> {
    Varint(u64),
    /// A 32- or 64-bit fixed-width value: no field the lab decodes has one, so only its
    /// width is read (to skip it).
    Fixed,
    Bytes(&'a [u8]),
}

/// A cursor over one message's bytes.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A base-128 varint of at most ten bytes.
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
            self.pos += 1;
            // The tenth byte may only carry the top bit of a u64.
            if i == 9 && b > 1 {
                return Err(DecodeError::BadVarint);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarint)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// The next field: its number and its raw value. Groups (wire types 3 and 4, unused
    /// by Kubernetes) are refused.
    pub fn next_field(&mut self) -> Result<(u32, Raw<'a>), DecodeError> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| DecodeError::BadKey(key))?;
        if number == 0 {
            return Err(DecodeError::BadKey(key));
        }
        let raw = match key & 7 {
            0 => Raw::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Raw::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| DecodeError::Truncated)?;
                Raw::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Raw::Fixed
            }
            _ => return Err(DecodeError::BadKey(key)),
        };
        Ok((number, raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_varints_keys_and_slices() {
        // field 1 varint 300, field 2 bytes "hi"
        let mut r = Reader::new(&[0x08, 0xac, 0x02, 0x12, 0x02, b'h', b'i']);
        assert_eq!(r.next_field().unwrap(), (1, Raw::Varint(300)));
        assert_eq!(r.next_field().unwrap(), (2, Raw::Bytes(b"hi")));
        assert!(r.done());
    }

    #[test]
    fn refuses_short_overlong_and_group_input() {
        assert_eq!(
            Reader::new(&[0x12, 0x05, b'a']).next_field(),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            Reader::new(&[0x08]).next_field(),
            Err(DecodeError::Truncated)
        );
        let overlong = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        assert_eq!(
            Reader::new(&overlong).next_field(),
            Err(DecodeError::BadVarint)
        );
        assert_eq!(
            Reader::new(&[0x0b]).next_field(),
            Err(DecodeError::BadKey(0x0b))
        );
        assert_eq!(
            Reader::new(&[0x00]).next_field(),
            Err(DecodeError::BadKey(0))
        );
        // A length near usize::MAX must not overflow the cursor.
        let huge = [
            0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(Reader::new(&huge).next_field(), Err(DecodeError::Truncated));
    }
}
