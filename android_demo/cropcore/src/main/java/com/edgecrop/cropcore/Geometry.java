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
}
