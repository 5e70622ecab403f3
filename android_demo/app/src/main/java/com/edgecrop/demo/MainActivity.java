package com.edgecrop.demo;

import android.app.Activity;
import android.content.Intent;
import android.content.res.AssetFileDescriptor;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.graphics.Canvas;
import android.graphics.Color;
import android.graphics.Matrix;
import android.graphics.Paint;
import android.graphics.Rect;
import android.net.Uri;
import android.os.Bundle;
import android.provider.MediaStore;
import android.view.MotionEvent;
import android.widget.CheckBox;
import android.widget.ImageView;
import android.widget.LinearLayout;
import android.widget.TextView;
import androidx.exifinterface.media.ExifInterface;
import com.edgecrop.cropcore.AspectRatio;
import com.edgecrop.cropcore.Boost;
import com.edgecrop.cropcore.Crop;
import com.edgecrop.cropcore.ModelCard;
import com.edgecrop.cropcore.CropSearch;
import com.edgecrop.cropcore.Preprocess;
import com.edgecrop.cropcore.Saliency;
import com.edgecrop.cropcore.SearchOptions;
import java.io.FileInputStream;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.util.List;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.gpu.GpuDelegate;

/**
 * Pick or take a photo; the bundled int8 model predicts a saliency map, cropcore finds the boxes for
 * 16:9, 1:1, 4:5 and 9:16; the heatmap, the boxes, the crops and the time per stage are shown. Tapping
 * the photo sets a focal point that overrides the model, as the Python SDK's --focus does.
 */
public class MainActivity extends Activity {
    private static final int PICK = 1, CAMERA = 2;
    private static final AspectRatio[] ASPECTS = {
        new AspectRatio(16, 9), new AspectRatio(1, 1), new AspectRatio(4, 5), new AspectRatio(9, 16)
    };
    private static final int[] COLOURS = {Color.RED, Color.GREEN, Color.BLUE, Color.YELLOW};
    private static final String MODEL = "edgecrop_int8.tflite";

    private Interpreter interpreter;
    private ModelCard card; // read from the model's own metadata: layout, normalisation, output, centre prior
    private Preprocess.InputSpec spec; // the card's resize mode and the tensors' sizes
    private GpuDelegate gpu;
    private Bitmap photo;
    private Boost focus;

    @Override
    protected void onCreate(Bundle state) {
        super.onCreate(state);
        setContentView(R.layout.activity_main);
        findViewById(R.id.pick).setOnClickListener(v ->
                startActivityForResult(new Intent(Intent.ACTION_GET_CONTENT).setType("image/*"), PICK));
        findViewById(R.id.camera).setOnClickListener(v ->
                startActivityForResult(new Intent(MediaStore.ACTION_IMAGE_CAPTURE), CAMERA));
        ((CheckBox) findViewById(R.id.gpu)).setOnCheckedChangeListener((b, on) -> { closeModel(); run(); });
        ((CheckBox) findViewById(R.id.heatmap)).setOnCheckedChangeListener((b, on) -> run());
        findViewById(R.id.photo).setOnTouchListener((v, e) -> {
            if (e.getAction() != MotionEvent.ACTION_UP || photo == null) return true;
            float[] p = viewToImage((ImageView) v, e.getX(), e.getY());
            focus = Boost.point(p[0], p[1], 4.0);
            run();
            return true;
        });
    }

    @Override
    protected void onActivityResult(int request, int result, Intent data) {
        super.onActivityResult(request, result, data);
        if (result != RESULT_OK || data == null) return;
        try {
            if (request == PICK) photo = decodeUpright(data.getData());
            else photo = (Bitmap) data.getExtras().get("data"); // thumbnail from the camera app
            focus = null;
            run();
        } catch (Exception e) {
            ((TextView) findViewById(R.id.timings)).setText("Cannot read that photo: " + e.getMessage());
        }
    }

    private Bitmap decodeUpright(Uri uri) throws Exception {
        Bitmap bmp;
        try (InputStream in = getContentResolver().openInputStream(uri)) {
            BitmapFactory.Options o = new BitmapFactory.Options();
            o.inSampleSize = 2; // the model needs 256 px; the screen needs a little more
            bmp = BitmapFactory.decodeStream(in, null, o);
        }
        if (bmp == null) throw new IllegalArgumentException("not an image");
        try (InputStream in = getContentResolver().openInputStream(uri)) {
            int orientation = new ExifInterface(in).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL);
            Matrix m = new Matrix();
            if (orientation == ExifInterface.ORIENTATION_ROTATE_90) m.postRotate(90);
            else if (orientation == ExifInterface.ORIENTATION_ROTATE_180) m.postRotate(180);
            else if (orientation == ExifInterface.ORIENTATION_ROTATE_270) m.postRotate(270);
            return m.isIdentity() ? bmp : Bitmap.createBitmap(bmp, 0, 0, bmp.getWidth(), bmp.getHeight(), m, true);
        }
    }

    private Interpreter model() throws Exception {
        if (interpreter == null) {
            Interpreter.Options o = new Interpreter.Options().setNumThreads(4).setUseXNNPACK(true);
            if (((CheckBox) findViewById(R.id.gpu)).isChecked()) {
                gpu = new GpuDelegate();
                o.addDelegate(gpu);
            }
            try (AssetFileDescriptor fd = getAssets().openFd(MODEL);
                 FileInputStream in = new FileInputStream(fd.getFileDescriptor())) {
                MappedByteBuffer buf = in.getChannel().map(FileChannel.MapMode.READ_ONLY, fd.getStartOffset(), fd.getDeclaredLength());
                byte[] bytes = new byte[buf.remaining()];
                buf.duplicate().get(bytes);
                card = ModelCard.fromModel(bytes, MODEL);
                interpreter = new Interpreter(buf, o);
                int[] inShape = interpreter.getInputTensor(0).shape(), outShape = interpreter.getOutputTensor(0).shape();
                spec = Preprocess.InputSpec.of(card, inShape[1], inShape[2], outShape[1], outShape[2]);
            }
        }
        return interpreter;
    }

    private void closeModel() {
        if (interpreter != null) interpreter.close();
        if (gpu != null) gpu.close();
        interpreter = null;
        gpu = null;
    }

    private void run() {
        if (photo == null) return;
        try {
            long t0 = System.nanoTime();
            Interpreter m = model();
            Preprocess.Layout place = Preprocess.layout(photo.getWidth(), photo.getHeight(), spec);
            long t1 = System.nanoTime();
            ByteBuffer input = toInput(place, m);
            long t2 = System.nanoTime();
            byte[] raw = new byte[spec.mapHeight * spec.mapWidth];
            ByteBuffer out = ByteBuffer.wrap(raw).order(ByteOrder.nativeOrder());
            m.run(input, out);
            long t3 = System.nanoTime();
            float scale = m.getOutputTensor(0).quantizationParams().getScale();
            int zp = m.getOutputTensor(0).quantizationParams().getZeroPoint();
            float[] deq = Saliency.dequantize(raw, scale, zp);
            if (card.output.flipAverage) { // the card says: average with the mirror image's map
                byte[] rawMirror = new byte[raw.length];
                m.run(Preprocess.mirrored(input, spec.height, spec.width), ByteBuffer.wrap(rawMirror).order(ByteOrder.nativeOrder()));
                deq = Saliency.flipAverage(deq, Saliency.dequantize(rawMirror, scale, zp), spec.mapHeight, spec.mapWidth);
            }
            int h = place.cells[3], w = place.cells[2];
            double[] map = Saliency.postprocess(Preprocess.contentCells(deq, spec, place), h, w, card);
            SearchOptions options = new SearchOptions();
            if (focus != null) options.boosts = new Boost[] {focus};
            long t4 = System.nanoTime();
            List<Crop> crops = CropSearch.findCrops(map, h, w, photo.getWidth(), photo.getHeight(), ASPECTS, options);
            long t5 = System.nanoTime();
            show(map, h, w, crops);
            ((TextView) findViewById(R.id.timings)).setText(String.format(
                    "load %.1f ms · preprocess %.1f ms · inference %.1f ms · postprocess %.2f ms · search %.2f ms%s%s",
                    (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6, (t4 - t3) / 1e6, (t5 - t4) / 1e6,
                    gpu != null ? " · GPU" : " · CPU (XNNPACK)", focus != null ? " · focal point set" : ""));
        } catch (Exception e) {
            ((TextView) findViewById(R.id.timings)).setText("Failed: " + e);
        }
    }

    /** Letterbox into 256x256 (black padding), then the int8 input table of cropcore. */
    private ByteBuffer toInput(Preprocess.Layout place, Interpreter m) {
        Bitmap canvas = Bitmap.createBitmap(spec.width, spec.height, Bitmap.Config.ARGB_8888);
        Rect dst = new Rect(place.content[0], place.content[1], place.content[0] + place.content[2], place.content[1] + place.content[3]);
        new Canvas(canvas).drawBitmap(photo, null, dst, new Paint(Paint.FILTER_BITMAP_FLAG));
        float scale = m.getInputTensor(0).quantizationParams().getScale();
        int zp = m.getInputTensor(0).quantizationParams().getZeroPoint();
        byte[][] lut = Preprocess.inputTable(card.input.mean, card.input.std, scale, zp);
        int[] px = new int[spec.width * spec.height];
        canvas.getPixels(px, 0, spec.width, 0, 0, spec.width, spec.height);
        ByteBuffer buf = ByteBuffer.allocateDirect(px.length * 3).order(ByteOrder.nativeOrder());
        for (int p : px) {
            buf.put(lut[0][(p >> 16) & 0xff]).put(lut[1][(p >> 8) & 0xff]).put(lut[2][p & 0xff]);
        }
        buf.rewind();
        return buf;
    }

    private void show(double[] map, int h, int w, List<Crop> crops) {
        Bitmap shown = photo.copy(Bitmap.Config.ARGB_8888, true);
        Canvas c = new Canvas(shown);
        if (((CheckBox) findViewById(R.id.heatmap)).isChecked()) {
            double max = 0;
            for (double v : map) max = Math.max(max, v);
            int[] colours = new int[h * w];
            for (int i = 0; i < colours.length; i++) {
                int a = (int) (160 * map[i] / max);
                colours[i] = Color.argb(a, 255, (int) (200 * (1 - map[i] / max)), 0);
            }
            Bitmap heat = Bitmap.createBitmap(colours, w, h, Bitmap.Config.ARGB_8888);
            c.drawBitmap(heat, null, new Rect(0, 0, shown.getWidth(), shown.getHeight()), new Paint(Paint.FILTER_BITMAP_FLAG));
        }
        Paint stroke = new Paint();
        stroke.setStyle(Paint.Style.STROKE);
        stroke.setStrokeWidth(Math.max(2, shown.getWidth() / 200f));
        LinearLayout strip = findViewById(R.id.crops);
        strip.removeAllViews();
        for (int i = 0; i < crops.size(); i++) {
            Crop k = crops.get(i);
            stroke.setColor(COLOURS[i % COLOURS.length]);
            c.drawRect(k.box.x, k.box.y, k.box.x + k.box.width, k.box.y + k.box.height, stroke);
            ImageView thumb = new ImageView(this);
            thumb.setImageBitmap(Bitmap.createBitmap(photo, k.box.x, k.box.y, k.box.width, k.box.height));
            thumb.setContentDescription(k.aspect.label() + " crop");
            strip.addView(thumb, new LinearLayout.LayoutParams(0, LinearLayout.LayoutParams.MATCH_PARENT, 1));
        }
        if (focus != null) {
            Paint dot = new Paint();
            dot.setColor(Color.WHITE);
            c.drawCircle((float) focus.x, (float) focus.y, shown.getWidth() / 60f, dot);
        }
        ((ImageView) findViewById(R.id.photo)).setImageBitmap(shown);
    }

    /** A touch on the fitCenter ImageView, in photo pixels. */
    private float[] viewToImage(ImageView v, float x, float y) {
        Matrix inverse = new Matrix();
        v.getImageMatrix().invert(inverse);
        float[] p = {x - v.getPaddingLeft(), y - v.getPaddingTop()};
        inverse.mapPoints(p);
        p[0] = Math.max(0, Math.min(photo.getWidth() - 1, p[0]));
        p[1] = Math.max(0, Math.min(photo.getHeight() - 1, p[1]));
        return p;
    }

    @Override
    protected void onDestroy() {
        closeModel();
        super.onDestroy();
    }
}
