package com.edgecrop.cropcore;

/** From the model's raw output to a probability map: edgecrop.model dequantisation and edgecrop.postprocess. */
public final class Saliency {
    private Saliency() {}

    /** (q - zeroPoint) * scale in float32, as the Python runtime does. */
    public static float[] dequantize(byte[] q, float scale, int zeroPoint) {
        float[] out = new float[q.length];
        for (int i = 0; i < q.length; i++) out[i] = ((float) q[i] - zeroPoint) * scale;
        return out;
    }

    /**
     * edgecrop.model.SaliencyModel.run with the card's output.flip_average: the mean of the raw map of the input
     * and the raw map of its mirror image (the whole canvas mirrored, see Preprocess.mirrored), flipped back.
     */
    public static float[] flipAverage(float[] raw, float[] rawOfMirror, int mapHeight, int mapWidth) {
        float[] out = new float[raw.length];
        for (int i = 0; i < mapHeight; i++)
            for (int j = 0; j < mapWidth; j++)
                out[i * mapWidth + j] = (raw[i * mapWidth + j] + rawOfMirror[i * mapWidth + mapWidth - 1 - j]) / 2f;
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

    /** edgecrop.postprocess.centre_prior_map: a centred Gaussian, sigma times each side, summing to 1. */
    public static double[] centrePriorMap(int h, int w, double sigma) {
        double[] gy = new double[h], gx = new double[w], g = new double[h * w];
        for (int i = 0; i < h; i++) {
            double y = ((i + 0.5) / h - 0.5) / sigma;
            gy[i] = Math.exp(-0.5 * y * y);
        }
        for (int j = 0; j < w; j++) {
            double x = ((j + 0.5) / w - 0.5) / sigma;
            gx[j] = Math.exp(-0.5 * x * x);
        }
        double total = 0;
        for (int i = 0; i < h; i++) for (int j = 0; j < w; j++) total += g[i * w + j] = gy[i] * gx[j];
        for (int k = 0; k < g.length; k++) g[k] /= total;
        return g;
    }

    /** edgecrop.postprocess.MAX_PRIOR_WEIGHT. */
    public static final double MAX_PRIOR_WEIGHT = 0.95;

    /** edgecrop.postprocess.prior_weight: weight moved by confidence times (the map's entropy over log(cells) - 0.5). */
    public static double priorWeight(double[] p, double weight, double confidence) {
        if (confidence == 0 || p.length < 2) return weight;
        double total = 0, entropy = 0;
        for (double v : p) if (v > 0) total += v;
        for (double v : p) if (v > 0) entropy -= (v / total) * Math.log(v / total);
        double unsure = entropy / Math.log(p.length);
        return Math.min(MAX_PRIOR_WEIGHT, Math.max(0.0, weight + confidence * (unsure - 0.5)));
    }

    /** edgecrop.postprocess.mix_centre_prior: (1 - w) * p + w * centre prior, renormalised, w = priorWeight(...). */
    public static double[] mixCentrePrior(double[] p, int h, int w, double weight, double sigma, double confidence) {
        weight = priorWeight(p, weight, confidence);
        if (weight <= 0) return p;
        double[] g = centrePriorMap(h, w, sigma), out = new double[p.length];
        double total = 0;
        for (int k = 0; k < p.length; k++) total += out[k] = (1 - weight) * p[k] + weight * g[k];
        for (int k = 0; k < p.length; k++) out[k] /= total;
        return out;
    }

    /** edgecrop.postprocess.postprocess: to a probability map as the card says, then the card's centre prior. */
    public static double[] postprocess(double[] values, int h, int w, ModelCard card) {
        double[] p = toProbability(values, card.output.kind, card.output.temperature);
        ModelCard.CentrePrior prior = card.output.centrePrior;
        return prior == null ? p : mixCentrePrior(p, h, w, prior.weight, prior.sigma, prior.confidence);
    }
}
