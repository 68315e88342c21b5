//! svscan: one supervise per service directory, with the service→log pipe.
