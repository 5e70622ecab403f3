package com.edgecrop.cropcore;

/** The largest window of an aspect ratio, with edgecrop.geometry's rounding rule (halves round up). */
public final class Geometry {
    private Geometry() {}

    public static int roundHalfUp(double x) {
        return (int) Math.floor(x + 0.5);
    }

    /** {w, h} of the largest window of ratio (width / height) in a width x height image, times scale. */
    public static int[] largestWindow(int width, int height, double ratio, double scale) {
        double w, h;
        if ((double) width / height >= ratio) {
            h = height * scale;
            w = h * ratio;
        } else {
            w = width * scale;
            h = w / ratio;
        }
        return new int[] {
            Math.min(width, Math.max(1, roundHalfUp(w))), Math.min(height, Math.max(1, roundHalfUp(h)))
        };
    }

    /** Parse "16:9", "16x9" or "16/9" into width / height. */
    public static double parseRatio(String text) {
        String[] parts = text.trim().split("[:x/]");
        if (parts.length != 2) throw new IllegalArgumentException("not an aspect ratio: " + text);
        double w = Double.parseDouble(parts[0].trim()), h = Double.parseDouble(parts[1].trim());
        if (!(w > 0 && h > 0)) throw new IllegalArgumentException("aspect ratio must be positive: " + text);
        return w / h;
    }
}
