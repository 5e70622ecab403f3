package com.edgecrop.cropcore;

/**
 * Where a picture sits in the model input and in the output map, and the pixel-to-tensor table: the
 * arithmetic of edgecrop.preprocess and edgecrop.model. (The resize itself is the platform's: Android's
 * Bitmap scaling on the phone, Pillow's bilinear in Python.) Python's round() rounds halves to even:
 * Math.rint here.
 */
public final class Preprocess {
    private Preprocess() {}

    /** Shape contract between a model and the pipeline (edgecrop.preprocess.InputSpec). */
    public static final class InputSpec {
        public final int height, width, mapHeight, mapWidth;
        public final String resize; // "letterbox" or "stretch", as edgecrop.preprocess.Resize

        /** The spec of a model: its tensors' sizes and its card's resize mode. */
        public static InputSpec of(ModelCard card, int height, int width, int mapHeight, int mapWidth) {
            return new InputSpec(height, width, mapHeight, mapWidth, card.input.resize);
        }

        public InputSpec(int height, int width, int mapHeight, int mapWidth, String resize) {
            if (!resize.equals("letterbox") && !resize.equals("stretch"))
                throw new IllegalArgumentException("resize must be letterbox or stretch, not " + resize);
            this.height = height;
            this.width = width;
            this.mapHeight = mapHeight;
            this.mapWidth = mapWidth;
            this.resize = resize;
        }
    }

    /** Content rectangle in input pixels and in output cells: {left, top, width, height} each. */
    public static final class Layout {
        public final int[] content, cells;

        Layout(int[] content, int[] cells) {
            this.content = content;
            this.cells = cells;
        }
    }

    public static Layout layout(int imageWidth, int imageHeight, InputSpec spec) {
        if (spec.resize.equals("stretch")) {
            return new Layout(new int[] {0, 0, spec.width, spec.height}, new int[] {0, 0, spec.mapWidth, spec.mapHeight});
        }
        double sx = (double) spec.width / spec.mapWidth, sy = (double) spec.height / spec.mapHeight;
        double scale = Math.min((double) spec.width / imageWidth, (double) spec.height / imageHeight);
        int cellsW = (int) Math.min(spec.mapWidth, Math.max(1, Math.rint(imageWidth * scale / sx)));
        int cellsH = (int) Math.min(spec.mapHeight, Math.max(1, Math.rint(imageHeight * scale / sy)));
        int leftC = (spec.mapWidth - cellsW) / 2, topC = (spec.mapHeight - cellsH) / 2;
        int left = (int) Math.rint(leftC * sx), top = (int) Math.rint(topC * sy);
        int width = (int) Math.rint((leftC + cellsW) * sx) - left;
        int height = (int) Math.rint((topC + cellsH) * sy) - top;
        return new Layout(new int[] {left, top, width, height}, new int[] {leftC, topC, cellsW, cellsH});
    }

    /**
     * Per-channel table from pixel value (0..255) to the int8 input, as edgecrop.model.input_table:
     * clip(rint(((p - mean) / std) / scale) + zp).
     */
    public static byte[][] inputTable(double[] mean, double[] std, double scale, int zeroPoint) {
        byte[][] lut = new byte[3][256];
        for (int c = 0; c < 3; c++) {
            for (int p = 0; p < 256; p++) {
                double real = (p - mean[c]) / std[c];
                double q = Math.rint(real / scale) + zeroPoint;
                lut[c][p] = (byte) Math.max(-128, Math.min(127, q));
            }
        }
        return lut;
    }

    /** The part of a row-major mapHeight x mapWidth output that covers the picture. */
    /** The model input of the mirror image: every row of a height x width x 3 input buffer reversed, pixel by pixel. */
    public static java.nio.ByteBuffer mirrored(java.nio.ByteBuffer input, int height, int width) {
        int pixel = input.capacity() / (height * width); // bytes per pixel: 3 channels of 1 or 4 bytes
        java.nio.ByteBuffer out = java.nio.ByteBuffer.allocateDirect(input.capacity()).order(input.order());
        byte[] px = new byte[pixel];
        for (int i = 0; i < height; i++)
            for (int j = 0; j < width; j++) {
                input.position((i * width + width - 1 - j) * pixel);
                input.get(px);
                out.put(px);
            }
        input.rewind();
        out.rewind();
        return out;
    }

    public static double[] contentCells(float[] raw, InputSpec spec, Layout place) {
        int left = place.cells[0], top = place.cells[1], w = place.cells[2], h = place.cells[3];
        double[] out = new double[w * h];
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) out[i * w + j] = raw[(top + i) * spec.mapWidth + left + j];
        return out;
    }
}
