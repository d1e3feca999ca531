//! The live source: the programs' BPF ring buffer.
