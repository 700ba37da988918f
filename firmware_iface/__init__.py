"""firmware_iface: everything that crosses the wire (protocol, buses, client, virtual joint, rig, CLI)."""
