package com.edgecrop.cropcore;

/** From the model's raw output to a probability map: edgecrop.model dequantisation and preprocess.to_probability. */
public final class Saliency {
    private Saliency() {}

    /** (q - zeroPoint) * scale in float32, as the Python runtime does. */
    public static float[] dequantize(byte[] q, float scale, int zeroPoint) {
        float[] out = new float[q.length];
        for (int i = 0; i < q.length; i++) out[i] = ((float) q[i] - zeroPoint) * scale;
        return out;
    }

    /** kind: "logits" (softmax of values / temperature), "probability" (clipped at 0) or "saliency" (minus min). */
    public static double[] toProbability(double[] values, String kind, double temperature) {
        double[] p = new double[values.length];
        if (kind.equals("logits")) {
            double max = Double.NEGATIVE_INFINITY;
            for (double v : values) max = Math.max(max, v / temperature);
            for (int i = 0; i < p.length; i++) p[i] = Math.exp(values[i] / temperature - max);
        } else if (kind.equals("probability")) {
            for (int i = 0; i < p.length; i++) p[i] = Math.max(0, values[i]);
        } else if (kind.equals("saliency")) {
            double min = Double.POSITIVE_INFINITY;
            for (double v : values) min = Math.min(min, v);
            for (int i = 0; i < p.length; i++) p[i] = values[i] - min;
        } else {
            throw new IllegalArgumentException("unknown output kind " + kind);
        }
        double total = 0;
        for (double v : p) total += v;
        if (!(total > 0) || Double.isInfinite(total)) {
            java.util.Arrays.fill(p, 1.0 / p.length);
            return p;
        }
        for (int i = 0; i < p.length; i++) p[i] /= total;
        return p;
    }
}
