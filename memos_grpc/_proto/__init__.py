"""Generated from proto/ by tools.gen_proto; do not edit."""
