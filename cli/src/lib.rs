//! The codesync binary: runs any subset of the nine services and the gateway, and migrates the database.
