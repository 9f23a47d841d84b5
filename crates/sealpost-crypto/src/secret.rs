//! The shape every secret type shares: boxed bytes, zeroized on drop, compared in constant time,
//! printed as `Name(<redacted>)`, never `Clone` or `Serialize`.

use rand_core::{OsRng, RngCore};

/// Fills `buf` from the operating system's CSPRNG (`randombytes_buf`).
///
/// Panics only if the operating system cannot supply randomness at all, which no caller could
/// recover from safely.
pub(crate) fn fill_random(buf: &mut [u8]) {
    OsRng.fill_bytes(buf);
}

/// Fresh random bytes (nonces and salts, which are not secret).
pub(crate) fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill_random(&mut out);
    out
}

/// Defines a 32-byte secret type with the house rules of STYLE.md.
macro_rules! secret_bytes {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub struct $name(Box<[u8; 32]>);

        #[allow(dead_code)] // not every secret type uses every constructor
        impl $name {
            /// Takes ownership of the bytes; the caller's copy is wiped.
            pub(crate) fn from_array(mut bytes: [u8; 32]) -> Self {
                let out = Self(Box::new(bytes));
                zeroize::Zeroize::zeroize(&mut bytes);
                out
            }

            /// Fresh random bytes, written straight into the heap.
            pub(crate) fn random() -> Self {
                let mut out = Self(Box::new([0u8; 32]));
                $crate::secret::fill_random(out.0.as_mut_slice());
                out
            }

            /// Copies 32 bytes out of a slice that is known to hold exactly that many.
            pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
                if bytes.len() != 32 {
                    return None;
                }
                let mut out = Self(Box::new([0u8; 32]));
                out.0.copy_from_slice(bytes);
                Some(out)
            }

            pub(crate) fn bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl zeroize::Zeroize for $name {
            fn zeroize(&mut self) {
                self.0.as_mut_slice().zeroize();
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                zeroize::Zeroize::zeroize(self);
            }
        }

        impl zeroize::ZeroizeOnDrop for $name {}

        impl PartialEq for $name {
            /// Constant time, so that comparing secrets leaks nothing through timing.
            fn eq(&self, other: &Self) -> bool {
                subtle::ConstantTimeEq::ct_eq(self.0.as_slice(), other.0.as_slice()).into()
            }
        }

        impl Eq for $name {}

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

pub(crate) use secret_bytes;
