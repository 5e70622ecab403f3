package com.edgecrop.cropcore;

/** width:height, kept with its label ("16:9"), as edgecrop.geometry.AspectRatio. */
public final class AspectRatio {
    public final double width, height;

    public AspectRatio(double width, double height) {
        if (!(width > 0 && height > 0 && Double.isFinite(width) && Double.isFinite(height)))
            throw new IllegalArgumentException("aspect ratio must be positive");
        this.width = width;
        this.height = height;
    }

    /** "16:9", "16x9" or "16/9". */
    public static AspectRatio parse(String text) {
        String[] parts = text.trim().split("[:x/]");
        if (parts.length != 2) throw new IllegalArgumentException("not an aspect ratio: " + text + " (use W:H)");
        return new AspectRatio(Double.parseDouble(parts[0].trim()), Double.parseDouble(parts[1].trim()));
    }

    public double value() {
        return width / height;
    }

    public String label() {
        return part(width) + ":" + part(height);
    }

    private static String part(double v) {
        return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AspectRatio && ((AspectRatio) o).width == width && ((AspectRatio) o).height == height;
    }

    @Override
    public int hashCode() {
        return Double.hashCode(width) * 31 + Double.hashCode(height);
    }
}
