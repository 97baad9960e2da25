"""The simulated stone bath: thermal plants, the fake 1-Wire tree and clocked mock pins."""
