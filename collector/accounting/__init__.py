"""Pure accounting: decoded records in, exact increments out. No I/O, no clock, no globals."""
