//! Z-order keys: each column's values mapped to order-preserving integers,
//! scaled into the column's observed range and bit-interleaved, so that
//! sorting by the key clusters rows on every column at once and each
//! written file covers a small box of values (narrow min/max statistics).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::{Error, Result};

/// Most columns a Z-order may interleave.
pub const MAX_ZORDER_COLUMNS: usize = 8;

/// Order-preserving 64-bit keys of `array`'s values (nulls sort first as 0).
pub fn sortable_keys(array: &ArrayRef) -> Result<Vec<u64>> {
    let unsupported = || {
        Error::InvalidArgument(format!(
            "cannot Z-order by a column of type {}",
            array.data_type()
        ))
    };
    let keys = match array.data_type() {
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => {
            let floats = cast(array, &DataType::Float64)?;
            let floats = floats.as_primitive::<Float64Type>();
            (0..floats.len())
                .map(|i| {
                    if floats.is_null(i) {
                        return 0;
                    }
                    let bits = floats.value(i).to_bits();
                    if bits >> 63 == 1 {
                        !bits
                    } else {
                        bits | (1 << 63)
                    }
                })
                .collect()
        }
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            let bytes = cast(array, &DataType::Binary)?;
            let bytes = bytes.as_binary::<i32>();
            (0..bytes.len())
                .map(|i| {
                    if bytes.is_null(i) {
                        return 0;
                    }
                    let mut prefix = [0u8; 8];
                    let value = bytes.value(i);
                    let n = value.len().min(8);
                    prefix[..n].copy_from_slice(&value[..n]);
                    u64::from_be_bytes(prefix)
                })
                .collect()
        }
        DataType::UInt64 => {
            let values = array.as_primitive_opt::<arrow::datatypes::UInt64Type>();
            let values = values.ok_or_else(unsupported)?;
            (0..values.len())
                .map(|i| {
                    if values.is_null(i) {
                        0
                    } else {
                        values.value(i)
                    }
                })
                .collect()
        }
        other if other.is_primitive() || *other == DataType::Boolean => {
            let integers = match other {
                DataType::Date32 => cast(&cast(array, &DataType::Int32)?, &DataType::Int64)?,
                _ => cast(array, &DataType::Int64).map_err(|_| unsupported())?,
            };
            let integers = integers.as_primitive::<Int64Type>();
            (0..integers.len())
                .map(|i| {
                    if integers.is_null(i) {
                        0
                    } else {
                        (integers.value(i) as u64) ^ (1 << 63)
                    }
                })
                .collect()
        }
        _ => return Err(unsupported()),
    };
    Ok(keys)
}

/// The sortable key of one value.
pub fn sortable_key(value: &ScalarValue) -> Result<u64> {
    let array = value.to_array()?;
    Ok(sortable_keys(&array)?.first().copied().unwrap_or(0))
}

/// `wavelake_zorder_key(c1, …)`: the interleaved key of its arguments,
/// each scaled from its `[low, high]` sortable-key range.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ZOrderKey {
    ranges: Vec<(u64, u64)>,
    signature: Signature,
}

impl ZOrderKey {
    /// A key over columns whose sortable keys lie in `ranges`.
    pub fn new(ranges: Vec<(u64, u64)>) -> Result<Self> {
        if ranges.is_empty() || ranges.len() > MAX_ZORDER_COLUMNS {
            return Err(Error::InvalidArgument(format!(
                "ZORDER BY takes 1 to {MAX_ZORDER_COLUMNS} columns, not {}",
                ranges.len()
            )));
        }
        Ok(Self {
            ranges,
            signature: Signature::variadic_any(Volatility::Immutable),
        })
    }

    /// As a DataFusion function.
    pub fn into_udf(self) -> ScalarUDF {
        ScalarUDF::new_from_impl(self)
    }

    /// Interleaves one row's scaled keys, most significant bits first.
    fn interleave(&self, keys: &[u64]) -> u64 {
        let bits = 64 / self.ranges.len() as u32;
        let scaled: Vec<u64> = keys
            .iter()
            .zip(&self.ranges)
            .map(|(&key, &(low, high))| {
                let span = u128::from(high.saturating_sub(low));
                if span == 0 {
                    return 0;
                }
                let offset = u128::from(key.clamp(low, high) - low);
                let top = (1u128 << bits) - 1;
                (offset * top / span) as u64
            })
            .collect();
        let mut out = 0u64;
        for bit in (0..bits).rev() {
            for value in &scaled {
                out = (out << 1) | ((value >> bit) & 1);
            }
        }
        out
    }
}

impl ScalarUDFImpl for ZOrderKey {
    fn name(&self) -> &str {
        "wavelake_zorder_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::UInt64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if args.args.len() != self.ranges.len() {
            return Err(DataFusionError::Plan(format!(
                "wavelake_zorder_key expects {} arguments",
                self.ranges.len()
            )));
        }
        let columns = args
            .args
            .iter()
            .map(|a| a.to_array(args.number_rows))
            .collect::<DfResult<Vec<_>>>()?;
        let keys = columns
            .iter()
            .map(sortable_keys)
            .collect::<Result<Vec<_>>>()?;
        let mut row = vec![0u64; keys.len()];
        let out: UInt64Array = (0..args.number_rows)
            .map(|i| {
                for (slot, column) in row.iter_mut().zip(&keys) {
                    *slot = column[i];
                }
                self.interleave(&row)
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int32Array, StringArray};

    fn keys(array: ArrayRef) -> Vec<u64> {
        sortable_keys(&array).unwrap()
    }

    #[test]
    fn sortable_keys_preserve_order() {
        let ints = keys(Arc::new(Int32Array::from(vec![-5, -1, 0, 3, 1000])));
        assert!(ints.windows(2).all(|w| w[0] < w[1]), "{ints:?}");
        let floats = keys(Arc::new(Float64Array::from(vec![
            -2.5, -0.1, 0.0, 0.1, 9e9,
        ])));
        assert!(floats.windows(2).all(|w| w[0] < w[1]), "{floats:?}");
        let strings = keys(Arc::new(StringArray::from(vec!["", "a", "ab", "b", "ba"])));
        assert!(strings.windows(2).all(|w| w[0] < w[1]), "{strings:?}");
    }

    #[test]
    fn interleaving_alternates_bits_of_each_column() {
        let key = ZOrderKey::new(vec![(0, 3), (0, 3)]).unwrap();
        // 32 bits per column; (3, 0) scales to (all ones, zero).
        let x_only = key.interleave(&[3, 0]);
        let y_only = key.interleave(&[0, 3]);
        assert_eq!(x_only, 0xAAAA_AAAA_AAAA_AAAA);
        assert_eq!(y_only, 0x5555_5555_5555_5555);
        assert_eq!(key.interleave(&[3, 3]), u64::MAX);
        assert_eq!(key.interleave(&[0, 0]), 0);
    }

    #[test]
    fn too_many_or_no_columns_are_refused() {
        assert!(ZOrderKey::new(Vec::new()).is_err());
        assert!(ZOrderKey::new(vec![(0, 1); MAX_ZORDER_COLUMNS + 1]).is_err());
        let err = sortable_keys(
            &(Arc::new(arrow::array::ListArray::new_null(
                Arc::new(arrow::datatypes::Field::new_list_field(
                    DataType::Int32,
                    true,
                )),
                1,
            )) as ArrayRef),
        )
        .unwrap_err();
        assert!(err.to_string().contains("cannot Z-order"), "{err}");
    }
}
