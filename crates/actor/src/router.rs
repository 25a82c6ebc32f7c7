//! Routers (see the module docs of each kind).
