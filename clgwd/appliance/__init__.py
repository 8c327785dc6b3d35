"""The appliance image's own helpers (image/build installs them): the console banner."""
