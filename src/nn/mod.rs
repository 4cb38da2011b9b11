//! Neural-network core (in progress).
