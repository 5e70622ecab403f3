package com.edgecrop.cropcore;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The named metadata buffers of a .tflite file, as edgecrop.modelfile.verify reads them: only the flatbuffer
 * tables Model.buffers, Model.metadata, Metadata.name/buffer and Buffer.data/offset/size, every offset
 * bounds-checked (a bad file is an IllegalArgumentException, never an out-of-bounds read).
 */
public final class TfliteMetadata {
    private static final int MODEL_BUFFERS = 4, MODEL_METADATA = 6;
    private static final int METADATA_NAME = 0, METADATA_BUFFER = 1;
    private static final int BUFFER_DATA = 0, BUFFER_OFFSET = 1, BUFFER_SIZE = 2;

    private final ByteBuffer buf;

    private TfliteMetadata(byte[] data) {
        buf = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
    }

    public static Map<String, byte[]> read(byte[] data) {
        if (data.length < 8 || data[4] != 'T' || data[5] != 'F' || data[6] != 'L' || data[7] != '3')
            throw new IllegalArgumentException("not a TFLite model (missing 'TFL3' identifier)");
        try {
            return new TfliteMetadata(data).metadata();
        } catch (IndexOutOfBoundsException e) {
            throw new IllegalArgumentException("corrupt TFLite flatbuffer", e);
        }
    }

    private int u32(int pos) {
        long v = buf.getInt(pos) & 0xffffffffL;
        if (v > Integer.MAX_VALUE) throw new IllegalArgumentException("offset out of range");
        return (int) v;
    }

    private int deref(int pos) {
        long target = (long) pos + u32(pos);
        if (target >= buf.capacity()) throw new IllegalArgumentException("offset runs past the end of the file");
        return (int) target;
    }

    /** Absolute position of a table field, or -1 when absent. */
    private int field(int table, int index) {
        int vtable = table - buf.getInt(table);
        int vtSize = buf.getShort(vtable) & 0xffff;
        int slot = 4 + 2 * index;
        if (slot + 2 > vtSize) return -1;
        int rel = buf.getShort(vtable + slot) & 0xffff;
        return rel == 0 ? -1 : table + rel;
    }

    private int[] tables(int table, int index) {
        int pos = field(table, index);
        if (pos < 0) return new int[0];
        int vec = deref(pos), count = u32(vec);
        if ((long) vec + 4 + 4L * count > buf.capacity()) throw new IllegalArgumentException("vector runs past the end");
        int[] out = new int[count];
        for (int k = 0; k < count; k++) out[k] = deref(vec + 4 + 4 * k);
        return out;
    }

    private byte[] bytes(int table, int index) {
        int pos = field(table, index);
        if (pos < 0) return new byte[0];
        int vec = deref(pos), n = u32(vec);
        if ((long) vec + 4 + n > buf.capacity()) throw new IllegalArgumentException("vector runs past the end");
        return copy(vec + 4, n);
    }

    private byte[] copy(int pos, int n) {
        byte[] out = new byte[n];
        ByteBuffer view = buf.duplicate();
        view.position(pos);
        view.get(out);
        return out;
    }

    private long scalar64(int table, int index) {
        int pos = field(table, index);
        return pos < 0 ? 0 : buf.getLong(pos);
    }

    private Map<String, byte[]> metadata() {
        int model = deref(0);
        int[] buffers = tables(model, MODEL_BUFFERS);
        Map<String, byte[]> out = new LinkedHashMap<>();
        for (int meta : tables(model, MODEL_METADATA)) {
            String name = new String(bytes(meta, METADATA_NAME), StandardCharsets.UTF_8);
            int pos = field(meta, METADATA_BUFFER);
            long index = pos < 0 ? 0 : buf.getInt(pos) & 0xffffffffL;
            if (index >= buffers.length) throw new IllegalArgumentException("metadata " + name + " points at a missing buffer");
            int buffer = buffers[(int) index];
            long offset = scalar64(buffer, BUFFER_OFFSET);
            if (offset > 1) {
                long size = scalar64(buffer, BUFFER_SIZE);
                if (offset + size > buf.capacity() || size < 0) throw new IllegalArgumentException("buffer outside the file");
                out.put(name, copy((int) offset, (int) size));
            } else {
                out.put(name, bytes(buffer, BUFFER_DATA));
            }
        }
        return out;
    }
}
