"""The process boundary: Blender (client side, stdlib only) drives a torch worker process over JSON lines."""
