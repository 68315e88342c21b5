//! qmailanalog: matchup and the z/x report tools over qmail-send logs.
