"""Local emulation of every trigger: realistic events, the Lambda Runtime Interface Emulator."""
