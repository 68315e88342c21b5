//! rqmail's mail programs. Each binary in `src/bin/` is a thin `main` over one module here.

// Shared by every program.
pub mod control;
pub mod home;
pub mod ids;
pub mod qq;
pub mod util;

// The queue and the local channel.
pub mod bounce;
pub mod clean;
pub mod configfast;
pub mod install;
pub mod lspawn;
pub mod qread;
pub mod queue;
pub mod send;
pub mod showctl;
pub mod spawn;
pub mod start;

// Local delivery.
pub mod checkperms;
pub mod local;
pub mod maildir;
pub mod mbox;
pub mod newu;
pub mod pw2u;
pub mod users;

// Inbound: SMTP and POP3.
pub mod checkpassword;
pub mod pop3d;
pub mod popup;
pub mod smtpd;

// Remote delivery.
pub mod remote;
pub mod rspawn;
pub mod serialmail;
pub mod tcpto;

// Injection front ends.
pub mod inject;
pub mod sendmail;

// Queue administration.
pub mod qadmin;
pub mod qmetrics;
