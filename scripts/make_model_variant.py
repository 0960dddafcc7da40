#!/usr/bin/env python3
"""Writes a copy of a GGUF model with its weight matrices stored in another
type (F16 or Q8_0), through the gguf package's own reader, quantizer and
writer: a second and third model for the multi-model tests, made here rather
than downloaded, and GGUF files that cohost did not write itself.

Usage: make_model_variant.py IN.gguf OUT.gguf {F16,Q8_0}

Metadata is copied (general.name gets the type appended); 1-D tensors (norms)
stay F32, as llama.cpp's quantizer keeps them.
"""
import sys

import gguf
import numpy as np

TARGETS = {"F16": gguf.GGMLQuantizationType.F16, "Q8_0": gguf.GGMLQuantizationType.Q8_0}


def copy_metadata(reader, writer, suffix):
    for field in reader.fields.values():
        # The writer adds the architecture itself; GGUF.* are the reader's own.
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if field.name == gguf.Keys.General.NAME:
            value = f"{value} {suffix}"
        writer.add_key_value(field.name, value, value_type, sub_type=sub_type)


def convert(tensor, target):
    """The tensor's values in `target` (1-D tensors stay F32): (data, type)."""
    values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
    if values.ndim == 1 or values.shape[-1] % 32 != 0:
        return values, gguf.GGMLQuantizationType.F32
    if target == gguf.GGMLQuantizationType.F16:
        return values.astype(np.float16), target
    return gguf.quants.quantize(values, target), target


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in TARGETS:
        sys.exit(__doc__)
    src, dst, name = sys.argv[1], sys.argv[2], sys.argv[3]
    target = TARGETS[name]
    reader = gguf.GGUFReader(src)
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    copy_metadata(reader, writer, name)
    for tensor in reader.tensors:
        data, qtype = convert(tensor, target)
        writer.add_tensor(tensor.name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
