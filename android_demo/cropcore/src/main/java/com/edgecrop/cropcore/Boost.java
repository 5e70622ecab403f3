package com.edgecrop.cropcore;

/**
 * A focal point or region the crop should keep (image pixels; width = height = 0 for a point), adding
 * weight times the model map's mass over the cells it covers, as edgecrop.search.Boost.
 */
public final class Boost {
    public final double x, y, width, height, weight;

    public Boost(double x, double y, double width, double height, double weight) {
        this.x = x;
        this.y = y;
        this.width = width;
        this.height = height;
        this.weight = weight;
    }

    public static Boost point(double x, double y, double weight) {
        return new Boost(x, y, 0, 0, weight);
    }

    /** Refuse what edgecrop.search.Boost refuses: non-finite values, negative sizes, a weight not in (0, 1e6]. */
    public Boost validate() {
        if (!(Double.isFinite(x) && Double.isFinite(y) && Math.abs(x) <= 1e9 && Math.abs(y) <= 1e9))
            throw new IllegalArgumentException("boost x and y must be finite");
        if (!(width >= 0 && height >= 0 && width <= 1e9 && height <= 1e9))
            throw new IllegalArgumentException("boost width and height must be in [0, 1e9]");
        if (!(weight > 0 && weight <= 1e6)) throw new IllegalArgumentException("boost weight must be in (0, 1e6]");
        return this;
    }

    /** A boost must touch the photo it steers. */
    public void checkInside(int imageWidth, int imageHeight) {
        if (x + width < 0 || y + height < 0 || x > imageWidth || y > imageHeight)
            throw new IllegalArgumentException("focus is outside the " + imageWidth + "x" + imageHeight + " photo");
    }

    /**
     * edgecrop.search.boosted_map: {the map the search works on (the model map normalised to 1, plus each
     * boost's weight over the cells its box covers, renormalised), the model's share of it}; row-major h x w.
     */
    public static double[][] boostedMap(double[] map, int h, int w, int width, int height, Boost[] boosts) {
        double total = 0;
        for (double v : map) total += v;
        double[] model = new double[map.length];
        for (int i = 0; i < map.length; i++) model[i] = total > 0 ? map[i] / total : 1.0 / (h * w);
        double[] out = model.clone();
        for (Boost b : boosts) {
            double bw = b.width > 0 ? b.width * w / width : 1.0;
            double bh = b.height > 0 ? b.height * h / height : 1.0;
            double u0 = b.x * w / width - (b.width > 0 ? 0 : 0.5);
            double v0 = b.y * h / height - (b.height > 0 ? 0 : 0.5);
            double[] cx = coverage(u0, u0 + bw, w), cy = coverage(v0, v0 + bh, h);
            double sum = 0;
            for (double a : cy) for (double c : cx) sum += a * c;
            if (sum > 0) {
                for (int i = 0; i < h; i++)
                    for (int j = 0; j < w; j++) out[i * w + j] += b.weight * (cy[i] * cx[j]) / sum;
            }
        }
        double s = 0;
        for (double v : out) s += v;
        for (int i = 0; i < out.length; i++) {
            out[i] /= s;
            model[i] /= s;
        }
        return new double[][] {out, model};
    }

    private static double[] coverage(double a, double b, int n) {
        double[] out = new double[n];
        for (int k = 0; k < n; k++) out[k] = Math.max(0, Math.min(b, k + 1) - Math.max(a, k));
        return out;
    }
}
