pub use peros_store::access::*;
