//! Integration tests: the real binary, in temporary folders. One test binary for all of them.

mod harness;

mod audit;
mod browser;
mod cli;
mod concurrency;
mod config;
mod demo;
mod docs;
mod doctor;
mod harness_sql;
mod hash_formats;
mod hostile;
mod init;
#[cfg(feature = "ldap")]
mod ldap;
mod mail;
mod manual;
mod mysql;
mod packaging;
mod plaintext;
mod postgres;
mod purge;
mod request;
mod reset;
mod revoke;
mod serve;
mod serve_hardening;
mod serve_shared;
mod smtp;
mod stop;
mod store;
mod systemd;
mod trust;
mod user;
mod verify;
mod walkthrough;
