package com.edgecrop.cropcore;

/** A crop box in image pixels. */
public final class Box {
    public final int x, y, width, height;

    public Box(int x, int y, int width, int height) {
        this.x = x;
        this.y = y;
        this.width = width;
        this.height = height;
    }

    public long area() {
        return (long) width * height;
    }

    /** Intersection over union, as edgecrop.geometry.Box.iou. */
    public double iou(Box o) {
        long ix = Math.max(0, Math.min(x + width, o.x + o.width) - Math.max(x, o.x));
        long iy = Math.max(0, Math.min(y + height, o.y + o.height) - Math.max(y, o.y));
        long inter = ix * iy;
        return (double) inter / (area() + o.area() - inter);
    }

    @Override
    public boolean equals(Object other) {
        if (!(other instanceof Box)) return false;
        Box b = (Box) other;
        return x == b.x && y == b.y && width == b.width && height == b.height;
    }

    @Override
    public int hashCode() {
        return ((x * 31 + y) * 31 + width) * 31 + height;
    }

    @Override
    public String toString() {
        return "(" + x + ", " + y + ", " + width + "x" + height + ")";
    }
}
