//! The integration tests, in one binary.
//!
//! Each test binary links the whole of attestgate, wasmtime included; one binary links it once.
//! Each module is one concern's tests (cited by `module::test_name` in THREAT-MODEL.md), and
//! `harness` is what they share: real OpenBao servers, the dev launcher, a config builder.

mod harness;

mod agent;
mod attestation;
mod cel_role;
mod chaos;
mod cli;
mod deploy;
mod doctor;
mod exchange;
mod golden;
mod kms;
mod launcher;
mod openbao;
mod plugins;
mod raft;
mod scale;
